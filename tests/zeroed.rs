//! `alloc_zeroed` returns zeroed memory even when it reuses blocks that were dirtied and freed:
//! by the same thread, by another thread (remote frees), and by a thread that has exited.

mod common;

use common::check_zero;
use core::alloc::{GlobalAlloc, Layout};
use mapalloc::MapAlloc;
use std::thread;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

const SMALL: &[usize] = &[
    1, 8, 16, 24, 48, 100, 128, 500, 1000, 1024, 4000, 4096, 8000,
];
const MEDIUM: &[usize] = &[20 << 10, 65 << 10, 200 << 10, 500 << 10];
const LARGE: &[usize] = &[1 << 20, (1 << 20) + 1, 8 << 20];

/// Blocks of one size live at once, so that a whole page (or several) gets dirtied.
fn count_for(size: usize) -> usize {
    match size {
        0..=8192 => 300,
        8193..=262_144 => 24,
        _ => 4,
    }
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 1).unwrap()
}

/// Allocates `count` blocks of `size` with `alloc` and fills every usable byte with 0xAA.
fn dirty_blocks(size: usize, count: usize) -> Vec<usize> {
    (0..count)
        .map(|_| {
            // SAFETY: non-zero size.
            let p = unsafe { MapAlloc.alloc(layout(size)) };
            assert!(!p.is_null(), "alloc {size}");
            // SAFETY: `p` is a live MapAlloc block with `usable_size` writable bytes.
            unsafe { core::ptr::write_bytes(p, 0xAA, mapalloc::usable_size(p)) };
            p as usize
        })
        .collect()
}

fn free_blocks(blocks: Vec<usize>, size: usize) {
    for p in blocks {
        // SAFETY: every address is a live block of `size` bytes allocated with `layout(size)`.
        unsafe { MapAlloc.dealloc(p as *mut u8, layout(size)) };
    }
}

/// `rounds` times: zero-allocate `count` blocks of `size`, check every byte, dirty them all,
/// free them.
fn zeroed_rounds(size: usize, count: usize, rounds: usize) {
    for round in 0..rounds {
        let blocks: Vec<usize> = (0..count)
            .map(|i| {
                // SAFETY: non-zero size.
                let p = unsafe { MapAlloc.alloc_zeroed(layout(size)) };
                assert!(!p.is_null(), "alloc_zeroed {size}");
                let what = format!("alloc_zeroed({size}), round {round}, block {i}");
                // SAFETY: `p` is a live block of `size` initialised bytes.
                unsafe { check_zero(p, size, &what) };
                // SAFETY: as above; `usable_size` bytes are writable.
                unsafe { core::ptr::write_bytes(p, 0xAA, mapalloc::usable_size(p)) };
                p as usize
            })
            .collect();
        free_blocks(blocks, size);
    }
}

fn same_thread(sizes: &[usize], rounds: usize) {
    for &size in sizes {
        let count = count_for(size);
        free_blocks(dirty_blocks(size, count), size);
        zeroed_rounds(size, count, rounds);
    }
}

#[test]
fn small_sizes() {
    same_thread(SMALL, 10);
}

#[test]
fn medium_sizes() {
    same_thread(MEDIUM, 6);
}

#[test]
fn large_sizes() {
    same_thread(LARGE, 6);
}

/// Interleaves plain `alloc` reuse with `alloc_zeroed` of the same size, so that the zeroed
/// blocks come from a free list that has just been cycled through.
#[test]
fn interleaved_with_plain_allocs() {
    for &size in SMALL.iter().chain(MEDIUM).chain(LARGE) {
        let count = count_for(size);
        for _ in 0..3 {
            let dirty = dirty_blocks(size, count);
            // Free every other block, zero-allocate into the holes, then free the rest.
            let odd = dirty.iter().skip(1).step_by(2).copied().collect();
            let even = dirty.iter().step_by(2).copied().collect();
            free_blocks(odd, size);
            zeroed_rounds(size, count / 2, 1);
            free_blocks(even, size);
            zeroed_rounds(size, count, 1);
        }
    }
}

/// Dirty blocks freed by another thread (remote frees) are zeroed when the owner reuses them.
#[test]
fn after_remote_frees() {
    for &size in SMALL.iter().chain(MEDIUM).chain(LARGE) {
        let count = count_for(size);
        for _ in 0..3 {
            let dirty = dirty_blocks(size, count);
            thread::spawn(move || free_blocks(dirty, size))
                .join()
                .unwrap();
            zeroed_rounds(size, count, 2);
        }
    }
}

/// Blocks dirtied and freed by a thread that has since exited are zeroed when reused by other
/// threads.
#[test]
fn after_thread_exit() {
    for &size in SMALL.iter().chain(MEDIUM).chain(LARGE) {
        let count = count_for(size);
        for _ in 0..3 {
            thread::spawn(move || free_blocks(dirty_blocks(size, count), size))
                .join()
                .unwrap();
            thread::spawn(move || zeroed_rounds(size, count, 2))
                .join()
                .unwrap();
        }
    }
}
