//! Unit tests of the segment layout, kinds and guards, a part of `segment`: pure address
//! arithmetic; also run under Miri (`cargo +nightly miri test --lib`).

use super::*;

#[test]
fn bitmap_positions_are_distinct_per_granule() {
    let step = if cfg!(miri) { 4093 } else { 1 };
    let granules = SEGMENT_SIZE >> GRANULE_SHIFT;
    let mut seen = vec![0u64; BITMAP_WORDS];
    let base = 0x7f12_3400_0000usize; // a segment-aligned address
    assert_eq!(base & SEGMENT_MASK, 0);
    let mut g = 0;
    while g < granules {
        let p = base + (g << GRANULE_SHIFT);
        let (w, bit) = bitmap_pos(p);
        assert!(w < BITMAP_WORDS);
        assert_eq!(bit.count_ones(), 1);
        assert_eq!(seen[w] & bit, 0, "granule {g} shares a bit");
        seen[w] |= bit;
        // Every byte of the granule maps to the same bit; the next segment starts over.
        assert_eq!(bitmap_pos(p + (1 << GRANULE_SHIFT) - 1), (w, bit));
        assert_eq!(bitmap_pos(p + SEGMENT_SIZE), (w, bit));
        g += step;
    }
}

#[test]
fn segment_map_index() {
    let (w0, b0) = segmap_index(0);
    assert_eq!((w0, b0), (0, 1));
    let (w, b) = segmap_index(65 << SEGMENT_SHIFT);
    assert_eq!((w, b), (1, 2));
    let top = (1usize << ADDRESS_BITS) - SEGMENT_SIZE;
    let (w, b) = segmap_index(top);
    assert_eq!((w, b), (SEGMAP_WORDS - 1, 1 << 63));
}

/// A segment header set up for `kind` (not a real segment: the arithmetic only).
fn header(kind: Kind, interior: u8) -> Box<Segment> {
    // SAFETY: every field of `Segment` is valid as zero (null pointers, zero counts,
    // false, kind Small).
    let mut s: Box<Segment> = Box::new(unsafe { core::mem::zeroed() });
    s.interior = interior;
    // SAFETY: a header of this test's own, with no blocks and no other user; clean (its
    // `dirty_bytes` is 0), so no global counter changes.
    unsafe { init(&mut *s, ptr::null_mut(), kind) };
    s
}

/// Issue 20, item 3: with the interior guards, no run of accessible memory inside a
/// segment is longer than the stride, and every block area lies inside one run.
#[test]
fn no_accessible_run_is_longer_than_the_stride() {
    let ps = os::page_size();
    let (meta_end, data_start) = layout();
    // The guards, as offsets: the metadata guard, the interior guards, the end guard.
    let mut guards = vec![(meta_end, data_start)];
    guards.extend(interior_offsets().map(|o| (o, o + interior_slot())));
    guards.push((SEGMENT_SIZE - ps, SEGMENT_SIZE));
    let mut runs = Vec::new();
    let mut at = 0;
    for &(g, end) in &guards {
        assert!(g >= at, "guards in order");
        runs.push((at, g));
        at = end;
    }
    assert_eq!(at, SEGMENT_SIZE);
    if os::HARDENED {
        assert_eq!(guards.len(), 2 + INTERIOR_GUARDS);
        for &(a, b) in &runs {
            assert!(b - a <= GUARD_STRIDE, "a run of {} bytes at {a:#x}", b - a);
        }
    }
    for kind in [Kind::Small, Kind::Medium, Kind::Big] {
        if !kind.has_segments() {
            continue;
        }
        let s = header(kind, INTERIOR_MARKERS);
        let (first, num) = s.page_range();
        let base = &*s as *const Segment as usize;
        let mut total = 0;
        let mut last_hi = 0;
        for i in first..num {
            let (lo, hi) = s.page_bounds(i);
            let (lo, hi) = (lo - base, hi - base);
            assert!(lo >= last_hi && lo <= hi, "{kind:?} page {i} overlaps");
            last_hi = hi;
            total += hi - lo;
            if hi > lo && os::HARDENED {
                assert!(
                    runs.iter().any(|&(a, b)| a <= lo && hi <= b),
                    "{kind:?} page {i} [{lo:#x}, {hi:#x}) crosses a guard"
                );
            }
            // Strict mode's tail guard: none where a guard follows already.
            let ends_at_guard = runs.iter().any(|&(_, b)| b == hi);
            assert_eq!(
                s.tail_guard(i).is_none(),
                hi == lo || (os::HARDENED && ends_at_guard),
                "{kind:?} page {i}"
            );
        }
        assert_eq!(
            total,
            data_bytes(),
            "{kind:?}: the pages cover the data area"
        );
    }
}

/// A medium page of 64 KiB blocks holds 7 of them (the first page, after the metadata,
/// 6 with 4 KiB OS pages); a small page ending a stride, one block of 8 KiB less.
#[test]
fn pages_that_end_a_stride_lose_one_os_page() {
    let ps = os::page_size();
    let slot = interior_slot();
    let medium = header(Kind::Medium, INTERIOR_MARKERS);
    let (first, num) = medium.page_range();
    for i in first..num {
        let (lo, hi) = medium.page_bounds(i);
        let nominal = ((i + 1) << 19) - (i << 19).max(layout().1);
        assert_eq!(hi - lo, nominal - if i + 1 == num { ps } else { slot });
    }
    if os::HARDENED && ps == 4096 {
        let cap = |i: usize| {
            let (lo, hi) = medium.page_bounds(i);
            (hi - lo) / MAX_MEDIUM_SIZE
        };
        assert_eq!(cap(1), 7);
        assert_eq!(cap(num - 1), 7);
        assert_eq!(cap(0), 6);
        let small = header(Kind::Small, INTERIOR_MARKERS);
        let (lo, hi) = small.page_bounds(7);
        assert_eq!((hi - lo) / MAX_SMALL_SIZE, 7);
        let (lo, hi) = small.page_bounds(8);
        assert_eq!((hi - lo) / MAX_SMALL_SIZE, 8);
    }
}

/// Without interior guards (their budget spent) strict mode guards the unused slots
/// instead, at no cost to the pages.
#[test]
fn strict_tail_guards_without_interior_guards() {
    let s = header(Kind::Small, INTERIOR_NONE);
    let base = &*s as *const Segment as usize;
    // The last small page of the first stride with blocks: page 7, or page 6 where the OS
    // page is 64 KiB and the guard slot takes page 7 whole.
    let last = (0..8)
        .rev()
        .find(|&i| s.page_bounds(i).0 < s.page_bounds(i).1)
        .unwrap();
    assert_eq!(last, if os::page_size() < SLICE_SIZE { 7 } else { 6 });
    let (_, hi) = s.page_bounds(last);
    if os::HARDENED {
        assert_eq!(s.tail_guard(last), Some((hi, false)));
        assert_eq!(hi - base, GUARD_STRIDE - interior_slot());
        let with = header(Kind::Small, INTERIOR_MARKERS);
        assert_eq!(with.tail_guard(last), None);
    }
    let (_, hi) = s.page_bounds(3);
    assert_eq!(s.tail_guard(3), Some((hi - os::page_size(), true)));
}

#[test]
fn kinds_by_block_size() {
    assert_eq!(Kind::of_block_size(16), Kind::Small);
    assert_eq!(Kind::of_block_size(MAX_SMALL_SIZE), Kind::Small);
    assert_eq!(Kind::of_block_size(MAX_SMALL_SIZE + 16), Kind::Medium);
    assert_eq!(Kind::of_block_size(MAX_MEDIUM_SIZE), Kind::Medium);
    assert_eq!(Kind::of_block_size(MEDIUM_KIND_MAX), Kind::Medium);
    assert_eq!(Kind::of_block_size(MEDIUM_KIND_MAX + 16), Kind::Big);
    for k in [Kind::Small, Kind::Medium, Kind::Big] {
        let page = 1usize << k.page_shift();
        assert!(page.is_power_of_two() && page <= SEGMENT_SIZE);
    }
    // A page of each kind holds at least a few blocks of its largest class.
    assert!((1 << Kind::Small.page_shift()) / MAX_SMALL_SIZE >= 8);
    assert!((1 << Kind::Medium.page_shift()) / MAX_MEDIUM_SIZE >= 8);
    assert!((1 << Kind::Medium.page_shift()) / MEDIUM_KIND_MAX >= 7);
}
