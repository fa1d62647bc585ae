//! Every power-of-two alignment from 1 B to 4 MiB is honoured by `alloc`, `alloc_zeroed` and
//! `realloc`, called on `MapAlloc` directly; `alloc` with alignment 1 still returns 16-byte
//! aligned blocks; impossible layouts fail with null instead of wrapping.

mod common;

use common::{check, check_zero, fill};
use core::alloc::{GlobalAlloc, Layout};
use mapalloc::MapAlloc;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

const MAX_ALIGN_SHIFT: u32 = 22; // 4 MiB

/// Sizes tried at alignment `align`: a fixed spread plus sizes next to the alignment itself.
fn sizes_for(align: usize) -> Vec<usize> {
    let mut v = vec![
        1,
        2,
        7,
        16,
        17,
        100,
        255,
        1024,
        4095,
        4096,
        4097,
        12_345,
        65_536,
        100_000,
        (1 << 20) + 3,
    ];
    v.extend(
        [align - 1, align, align + 1, 2 * align + 16]
            .iter()
            .filter(|&&s| s >= 1),
    );
    v.sort_unstable();
    v.dedup();
    v
}

fn assert_aligned(p: *mut u8, align: usize, what: &str) {
    assert!(!p.is_null(), "{what}: null");
    assert_eq!(
        p as usize % align,
        0,
        "{what}: {p:p} is not {align}-aligned"
    );
}

#[test]
fn alloc_and_realloc_keep_every_alignment() {
    let mut seed = 0u64;
    for shift in 0..=MAX_ALIGN_SHIFT {
        let align = 1usize << shift;
        for size in sizes_for(align) {
            seed += 1;
            let what = format!("align {align} size {size}");
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: `layout` has a non-zero size.
            let p = unsafe { MapAlloc.alloc(layout) };
            assert_aligned(p, align, &format!("alloc {what}"));
            // SAFETY: `p` is a live block of `size` bytes.
            unsafe {
                fill(p, size, seed);
                check(p, size, seed, &what);
            }

            // Grow, keeping the alignment and the contents.
            let bigger = size * 2 + 13;
            // SAFETY: `p` was allocated with `layout`; `bigger` rounded up to `align` is far
            // below `isize::MAX`.
            let q = unsafe { MapAlloc.realloc(p, layout, bigger) };
            assert_aligned(q, align, &format!("realloc up to {bigger}, {what}"));
            // SAFETY: `q` is a live block of `bigger` bytes whose first `size` were copied.
            unsafe {
                check(
                    q,
                    size,
                    seed,
                    &format!("after realloc up to {bigger}, {what}"),
                );
                fill(q, bigger, seed + 1_000_000);
            }

            // Shrink below the original size.
            let smaller = (size / 2).max(1);
            let big_layout = Layout::from_size_align(bigger, align).unwrap();
            // SAFETY: `q` was allocated (reallocated) with `big_layout`; `smaller` is non-zero.
            let r = unsafe { MapAlloc.realloc(q, big_layout, smaller) };
            assert_aligned(r, align, &format!("realloc down to {smaller}, {what}"));
            // SAFETY: `r` is a live block of `smaller` bytes.
            unsafe {
                check(
                    r,
                    smaller,
                    seed + 1_000_000,
                    &format!("after realloc down, {what}"),
                )
            };

            // SAFETY: `r` is live with this layout.
            unsafe { MapAlloc.dealloc(r, Layout::from_size_align(smaller, align).unwrap()) };
        }
    }
}

#[test]
fn alloc_zeroed_keeps_every_alignment() {
    for shift in 0..=MAX_ALIGN_SHIFT {
        let align = 1usize << shift;
        for size in sizes_for(align) {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: `layout` has a non-zero size.
            let p = unsafe { MapAlloc.alloc_zeroed(layout) };
            let what = format!("alloc_zeroed align {align} size {size}");
            assert_aligned(p, align, &what);
            // SAFETY: `p` is a live, zero-initialised block of `size` bytes.
            unsafe {
                check_zero(p, size, &what);
                // Dirty it so that a later zeroed block reusing this memory must clear it.
                core::ptr::write_bytes(p, 0xAA, size);
                MapAlloc.dealloc(p, layout);
            }
        }
    }
}

/// Many live blocks at the same alignment: every one is aligned (not just the first one of a
/// fresh region) and none overlaps another.
#[test]
fn many_live_blocks_per_alignment_are_aligned_and_disjoint() {
    for shift in 0..=MAX_ALIGN_SHIFT {
        let align = 1usize << shift;
        let count = if align >= 1 << 20 { 12 } else { 64 };
        for size in [1, 24, 3000, align + 1] {
            let layout = Layout::from_size_align(size, align).unwrap();
            let what = format!("align {align} size {size}");
            let blocks: Vec<*mut u8> = (0..count)
                .map(|i| {
                    // SAFETY: `layout` has a non-zero size.
                    let p = unsafe { MapAlloc.alloc(layout) };
                    assert_aligned(p, align, &format!("block {i}, {what}"));
                    // SAFETY: `p` is a live block of `size` bytes.
                    unsafe { fill(p, size, i as u64) };
                    p
                })
                .collect();
            for (i, &p) in blocks.iter().enumerate() {
                // SAFETY: every block is live and was filled above.
                unsafe { check(p, size, i as u64, &format!("block {i}, {what}")) };
            }
            for p in blocks {
                // SAFETY: `p` is live with `layout`.
                unsafe { MapAlloc.dealloc(p, layout) };
            }
        }
    }
}

#[test]
fn alignment_one_still_gives_16_byte_alignment() {
    let blocks: Vec<(*mut u8, Layout)> = (1..=4096usize)
        .map(|size| {
            let layout = Layout::from_size_align(size, 1).unwrap();
            // SAFETY: `layout` has a non-zero size.
            let p = unsafe { MapAlloc.alloc(layout) };
            assert_aligned(p, 16, &format!("alloc size {size} align 1"));
            // SAFETY: `p` is a live block of `size` bytes.
            unsafe { fill(p, size, size as u64) };
            (p, layout)
        })
        .collect();
    for &(p, layout) in &blocks {
        // SAFETY: every block is live and was filled above.
        unsafe { check(p, layout.size(), layout.size() as u64, "align-1 block") };
    }
    for (p, layout) in blocks {
        // SAFETY: `p` is live with `layout`; the new size is non-zero and small.
        let q = unsafe { MapAlloc.realloc(p, layout, layout.size() + 40) };
        assert_aligned(
            q,
            16,
            &format!("realloc size {} + 40 align 1", layout.size()),
        );
        // SAFETY: `q` is live with `size + 40` bytes, the first `size` copied from `p`.
        unsafe {
            check(
                q,
                layout.size(),
                layout.size() as u64,
                "align-1 block after realloc",
            );
            MapAlloc.dealloc(q, Layout::from_size_align(layout.size() + 40, 1).unwrap());
        }
    }
}

/// Layouts no address space can hold: null, never a wrapped small block, and the allocator
/// keeps working afterwards.
#[test]
fn impossible_layouts_return_null() {
    let max = isize::MAX as usize;
    for shift in [0, 4, 12, 16, MAX_ALIGN_SHIFT] {
        let align = 1usize << shift;
        // `max + 1 - align` is the largest size that `Layout` accepts at this alignment;
        // sizes that overflow once an allocator rounds them up to a page or a class.
        for size in [
            max + 1 - align,
            max + 1 - 2 * align,
            (max >> 1) + 1,
            1 << 60,
        ] {
            let size = size & !(align - 1);
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: `layout` has a non-zero size.
            let p = unsafe { MapAlloc.alloc(layout) };
            assert!(p.is_null(), "alloc({size}, align {align}) returned {p:p}");
            // SAFETY: as above.
            let p = unsafe { MapAlloc.alloc_zeroed(layout) };
            assert!(
                p.is_null(),
                "alloc_zeroed({size}, align {align}) returned {p:p}"
            );
        }
        for size in [max - 1, max - 4095, max - (4 << 20) + 1] {
            if let Ok(layout) = Layout::from_size_align(size, align) {
                // SAFETY: `layout` has a non-zero size.
                let p = unsafe { MapAlloc.alloc(layout) };
                assert!(p.is_null(), "alloc({size}, align {align}) returned {p:p}");
            }
        }
    }
    let layout = Layout::from_size_align(100, 64).unwrap();
    // SAFETY: `layout` has a non-zero size.
    let p = unsafe { MapAlloc.alloc(layout) };
    assert_aligned(p, 64, "alloc after failed huge allocations");
    // SAFETY: `p` is live with `layout`.
    unsafe {
        fill(p, 100, 7);
        check(p, 100, 7, "alloc after failed huge allocations");
        MapAlloc.dealloc(p, layout);
    }
}
