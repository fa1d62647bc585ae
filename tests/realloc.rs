//! `realloc` keeps a block's contents across every size-class boundary, into large blocks (up
//! to 64 MiB) and back down; `usable_size` is honest: at least the requested size, and every
//! byte it reports can be written without touching another block.

mod common;

use common::{XorShift, check, fill, fill_range};
use core::alloc::{GlobalAlloc, Layout};
use mapalloc::MapAlloc;
use std::thread;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

/// Ascending sizes from 1 B to 64 MiB: each boundary of a 16-byte step up to 128 B, of
/// eight classes per power of two up to 1 MiB, and of power-of-two halves above, each with its
/// neighbours (`s - 1`, `s`, `s + 1`).
fn boundary_sizes() -> Vec<usize> {
    let mut points: Vec<usize> = (1..=8).map(|k| k * 16).collect();
    for e in 7..20 {
        points.extend((9..=16).map(|m| m << (e - 3)));
    }
    for e in 20..26 {
        points.extend([3 << (e - 1), 2 << e]);
    }
    let mut v = vec![1];
    for s in points {
        v.extend([s - 1, s, s + 1]);
    }
    v.sort_unstable();
    v.dedup();
    assert_eq!(*v.last().unwrap(), (64 << 20) + 1);
    v
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 1).unwrap()
}

/// Reallocates the block `p` of `old` bytes (holding the pattern of `seed`) to `new` bytes,
/// checks the kept prefix, and fills the rest so that the whole block holds the pattern.
///
/// # Safety
/// `p` is a live `MapAlloc` block of `old` bytes (alignment 1) holding the pattern of `seed`.
unsafe fn realloc_checked(p: *mut u8, old: usize, new: usize, seed: u64) -> *mut u8 {
    // SAFETY: guaranteed by the caller; `new` is non-zero and far below `isize::MAX`.
    let q = unsafe { MapAlloc.realloc(p, layout(old), new) };
    assert!(!q.is_null(), "realloc {old} -> {new} failed");
    assert_eq!(q as usize % 16, 0, "realloc {old} -> {new} gave {q:p}");
    // SAFETY: `q` is a live block of `new` bytes whose first `min(old, new)` were copied.
    unsafe {
        check(q, old.min(new), seed, &format!("realloc {old} -> {new}"));
        if new > old {
            fill_range(q, old, new, seed);
        }
    }
    q
}

#[test]
fn contents_survive_every_boundary_up_and_down() {
    let sizes = boundary_sizes();
    let seed = 1;
    // SAFETY: non-zero size.
    let mut p = unsafe { MapAlloc.alloc(layout(1)) };
    assert!(!p.is_null());
    // SAFETY: `p` is a live block of 1 byte.
    unsafe { fill(p, 1, seed) };
    let mut cur = 1;
    for &s in sizes.iter().skip(1).chain(sizes.iter().rev().skip(1)) {
        // SAFETY: `p` is a live block of `cur` bytes holding the pattern.
        p = unsafe { realloc_checked(p, cur, s, seed) };
        cur = s;
    }
    assert_eq!(cur, 1);
    // SAFETY: `p` is live with `layout(1)`.
    unsafe { MapAlloc.dealloc(p, layout(1)) };
}

/// Jumps between far-apart sizes (small to large and back) rather than walking step by step.
#[test]
fn contents_survive_big_jumps() {
    let sizes = boundary_sizes();
    let mut rng = XorShift::new(42);
    for round in 0..4u64 {
        let mut cur = sizes[rng.range(0, sizes.len() - 1)];
        // SAFETY: non-zero size.
        let mut p = unsafe { MapAlloc.alloc(layout(cur)) };
        assert!(!p.is_null());
        // SAFETY: `p` is a live block of `cur` bytes.
        unsafe { fill(p, cur, round) };
        for _ in 0..40 {
            // Mostly below 1 MiB, so that the large blocks do not dominate the run time.
            let s = sizes[rng.range(0, sizes.len() - 1)].min(rng.range(1, 2 << 20));
            // SAFETY: `p` is a live block of `cur` bytes holding the pattern.
            p = unsafe { realloc_checked(p, cur, s, round) };
            cur = s;
        }
        // SAFETY: `p` is live with `layout(cur)`.
        unsafe { MapAlloc.dealloc(p, layout(cur)) };
    }
}

#[test]
fn growth_by_doubling_keeps_the_whole_pattern() {
    let seed = 2;
    let mut cur = 1;
    // SAFETY: non-zero size.
    let mut p = unsafe { MapAlloc.alloc(layout(cur)) };
    assert!(!p.is_null());
    // SAFETY: `p` is a live block of `cur` bytes.
    unsafe { fill(p, cur, seed) };
    while cur < 32 << 20 {
        let new = cur * 2;
        // SAFETY: `p` is a live block of `cur` bytes holding the pattern.
        p = unsafe { realloc_checked(p, cur, new, seed) };
        // SAFETY: `realloc_checked` filled the new part; the whole block holds the pattern.
        unsafe {
            check(
                p,
                new,
                seed,
                &format!("whole block after doubling to {new}"),
            )
        };
        cur = new;
    }
    // SAFETY: `p` is live with `layout(cur)`.
    unsafe { MapAlloc.dealloc(p, layout(cur)) };
}

/// Shrinking in place and growing again must not resurrect stale bytes into the kept prefix.
#[test]
fn shrink_then_grow_keeps_prefix() {
    for &big in &[100usize, 5000, 70_000, 600_000, 3 << 20, 40 << 20] {
        // SAFETY: non-zero size.
        let p = unsafe { MapAlloc.alloc(layout(big)) };
        assert!(!p.is_null());
        // SAFETY: `p` is a live block of `big` bytes.
        unsafe { fill(p, big, big as u64) };
        let small = big / 3;
        // SAFETY: `p` is a live block of `big` bytes holding the pattern.
        let q = unsafe { realloc_checked(p, big, small, big as u64) };
        // Overwrite the kept part with another pattern, then grow back.
        // SAFETY: `q` is a live block of `small` bytes.
        unsafe { fill(q, small, big as u64 + 1) };
        // SAFETY: `q` is a live block of `small` bytes holding pattern `big + 1`.
        let r = unsafe { realloc_checked(q, small, big, big as u64 + 1) };
        // SAFETY: `r` is a live block of `big` bytes.
        unsafe {
            check(r, big, big as u64 + 1, "shrunk and regrown block");
            MapAlloc.dealloc(r, layout(big));
        }
    }
}

#[test]
fn usable_size_is_honest() {
    let mut sizes = boundary_sizes();
    sizes.retain(|&s| s <= 16 << 20);
    for &size in &sizes {
        // Several neighbours of the same size: writing all usable bytes of each must not
        // reach into another.
        let count = if size <= 1 << 20 { 8 } else { 2 };
        let blocks: Vec<(*mut u8, usize)> = (0..count)
            .map(|i| {
                // SAFETY: non-zero size.
                let p = unsafe { MapAlloc.alloc(layout(size)) };
                assert!(!p.is_null(), "alloc {size}");
                // SAFETY: `p` is a live MapAlloc block.
                let usable = unsafe { mapalloc::usable_size(p) };
                assert!(usable >= size, "usable_size {usable} < requested {size}");
                // SAFETY: the allocator promises `usable` writable bytes at `p`.
                unsafe { fill(p, usable, (size * 8 + i) as u64) };
                (p, usable)
            })
            .collect();
        for (i, &(p, usable)) in blocks.iter().enumerate() {
            // SAFETY: every block is live and was filled up to `usable` above.
            unsafe {
                check(
                    p,
                    usable,
                    (size * 8 + i) as u64,
                    &format!("usable bytes of {size}"),
                );
                assert_eq!(mapalloc::usable_size(p), usable, "usable_size changed");
            }
        }
        for (p, _) in blocks {
            // SAFETY: `p` is live with `layout(size)`.
            unsafe { MapAlloc.dealloc(p, layout(size)) };
        }
    }
}

#[test]
fn usable_size_of_aligned_and_reallocated_blocks() {
    for shift in [4u32, 6, 12, 16, 20, 22] {
        let align = 1usize << shift;
        for size in [1, 33, 5000, 300_000] {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { MapAlloc.alloc(l) };
            assert!(!p.is_null());
            // SAFETY: `p` is a live MapAlloc block.
            let usable = unsafe { mapalloc::usable_size(p) };
            assert!(usable >= size, "usable {usable} < {size} at align {align}");
            // SAFETY: the allocator promises `usable` writable bytes at `p`.
            unsafe { fill(p, usable, 9) };
            let new = size * 3 + 1;
            // SAFETY: `p` is live with `l`; `new` is non-zero and small.
            let q = unsafe { MapAlloc.realloc(p, l, new) };
            assert!(!q.is_null());
            // SAFETY: `q` is a live MapAlloc block of `new` bytes.
            unsafe {
                check(q, size, 9, "prefix after realloc of an aligned block");
                let usable = mapalloc::usable_size(q);
                assert!(usable >= new, "usable {usable} < {new} after realloc");
                fill(q, usable, 10);
                check(q, usable, 10, "usable bytes after realloc");
                MapAlloc.dealloc(q, Layout::from_size_align(new, align).unwrap());
            }
        }
    }
}

/// A realloc that cannot be satisfied returns null and leaves the old block intact.
#[test]
fn impossible_realloc_returns_null_and_keeps_block() {
    for size in [24usize, 20_000, 2 << 20] {
        // SAFETY: non-zero size.
        let p = unsafe { MapAlloc.alloc(layout(size)) };
        assert!(!p.is_null());
        // SAFETY: `p` is a live block of `size` bytes.
        unsafe { fill(p, size, 11) };
        for new in [isize::MAX as usize, isize::MAX as usize - 4095, 1 << 60] {
            // SAFETY: `p` is live with `layout(size)`; `new` rounded up to alignment 1 does
            // not overflow `isize`.
            let q = unsafe { MapAlloc.realloc(p, layout(size), new) };
            assert!(q.is_null(), "realloc {size} -> {new} returned {q:p}");
            // SAFETY: a failed realloc leaves `p` live and unchanged.
            unsafe { check(p, size, 11, "block after failed realloc") };
        }
        // SAFETY: `p` is still live with `layout(size)`.
        unsafe { MapAlloc.dealloc(p, layout(size)) };
    }
}

/// Writes `stamp + page index` into the first 8 bytes of every 4 KiB of the block: touches
/// every page cheaply, so a block whose pages are not (or no longer) mapped faults at once.
///
/// # Safety
/// `p` is valid for writes of `len` bytes and 8-byte aligned.
unsafe fn stamp_pages(p: *mut u8, len: usize, stamp: u64) {
    for (k, off) in (0..len.saturating_sub(7)).step_by(4096).enumerate() {
        // SAFETY: `off + 8 <= len`; `off` is a multiple of 4096 from an 8-aligned `p`.
        unsafe { p.add(off).cast::<u64>().write(stamp + k as u64) };
    }
}

/// Panics unless [`stamp_pages`] with `stamp` wrote the first `len` bytes at `p`.
///
/// # Safety
/// `p` is valid for reads of `len` bytes, 8-byte aligned, stamped over at least `len` bytes.
unsafe fn check_pages(p: *const u8, len: usize, stamp: u64, what: &str) {
    for (k, off) in (0..len.saturating_sub(7)).step_by(4096).enumerate() {
        // SAFETY: as in `stamp_pages`.
        let got = unsafe { p.add(off).cast::<u64>().read() };
        assert_eq!(
            got,
            stamp + k as u64,
            "{what}: page {k} of {p:p} ({len} bytes)"
        );
    }
}

/// Large blocks grown by `realloc` (moved to a new range) in some threads while other threads
/// map and unmap large blocks: the growth must never unmap or hand out memory that another
/// thread's block occupies.
#[test]
fn large_growth_races_with_large_allocs() {
    const ROUNDS: usize = 3000;
    thread::scope(|s| {
        for t in 0..4u64 {
            s.spawn(move || {
                let mut rng = XorShift::new(t + 100);
                for i in 0..ROUNDS as u64 {
                    let stamp = (t << 48) | (i << 16);
                    let size = rng.range(520 << 10, 1 << 20) & !7;
                    let l = Layout::from_size_align(size, 8).unwrap();
                    // SAFETY: non-zero size.
                    let p = unsafe { MapAlloc.alloc(l) };
                    assert!(!p.is_null(), "alloc {size}");
                    // SAFETY: `p` is a live, 8-aligned block of `size` bytes.
                    unsafe { stamp_pages(p, size, stamp) };
                    let (p, size) = if t % 2 == 0 {
                        // Growers: move the block to a bigger range.
                        let new = size * 2 + 4096;
                        // SAFETY: `p` is live with `l`; `new` is small and non-zero.
                        let q = unsafe { MapAlloc.realloc(p, l, new) };
                        assert!(!q.is_null(), "realloc {size} -> {new}");
                        // SAFETY: `q` is live with `new` bytes, the first `size` kept.
                        unsafe {
                            check_pages(q, size, stamp, "grown block");
                            stamp_pages(q, new, stamp);
                        }
                        (q, new)
                    } else {
                        (p, size)
                    };
                    // SAFETY: `p` is live with `size` bytes, all stamped.
                    unsafe {
                        check_pages(p, size, stamp, "large block");
                        MapAlloc.dealloc(p, Layout::from_size_align(size, 8).unwrap());
                    }
                }
            });
        }
    });
}
