//! Statistics: counters gathered from every heap, the large-block table, the segment layer
//! and the OS layer. Per-thread counters are written by their owner with plain stores and
//! merged here on read, so the fast path pays no atomic operation for them; remote frees are
//! counted when the owner collects them.

use crate::{heap, large, os, segment, size_class};

/// A snapshot of the allocator's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Size-class allocations and frees (remote frees count once their owner collects them).
    pub small_allocs: u64,
    pub small_frees: u64,
    /// Bytes of size-class blocks allocated and not yet freed.
    pub small_live_bytes: u64,
    pub large_allocs: u64,
    pub large_frees: u64,
    pub large_live_bytes: u64,
    pub large_cached_bytes: u64,
    /// Bytes of segments mapped (in use or cached).
    pub segment_bytes: u64,
    pub heaps_live: u64,
    pub heaps_abandoned: u64,
    pub mmap: u64,
    pub munmap: u64,
    pub mprotect: u64,
    pub madvise: u64,
    pub mremap: u64,
}

/// Gather the counters. Never allocates.
pub fn summary() -> Stats {
    let mut s = Stats::default();
    heap::for_each_heap(|h| {
        for c in 0..size_class::NUM_CLASSES {
            let a = h.allocs[c].load(core::sync::atomic::Ordering::Relaxed);
            let f = h.frees[c].load(core::sync::atomic::Ordering::Relaxed);
            s.small_allocs += a;
            s.small_frees += f;
            s.small_live_bytes += a.saturating_sub(f) * size_class::class_size(c) as u64;
        }
    });
    let (live, cached, la, lf) = large::counters();
    s.large_live_bytes = live as u64;
    s.large_cached_bytes = cached as u64;
    s.large_allocs = la;
    s.large_frees = lf;
    s.segment_bytes = segment::mapped_segments() as u64 * segment::SEGMENT_SIZE as u64;
    let (hl, ha) = heap::heap_counts();
    s.heaps_live = hl as u64;
    s.heaps_abandoned = ha as u64;
    use core::sync::atomic::Ordering::Relaxed;
    s.mmap = os::SYSCALLS.mmap.load(Relaxed) as u64;
    s.munmap = os::SYSCALLS.munmap.load(Relaxed) as u64;
    s.mprotect = os::SYSCALLS.mprotect.load(Relaxed) as u64;
    s.madvise = os::SYSCALLS.madvise.load(Relaxed) as u64;
    s.mremap = os::SYSCALLS.mremap.load(Relaxed) as u64;
    s
}

/// Print a short summary to stderr (three lines starting with `mapalloc:`). Never allocates.
pub fn print() {
    let s = summary();
    let mut l = os::Line::new();
    l.str("mapalloc: ")
        .dec(s.small_allocs + s.large_allocs)
        .str(" allocations, ")
        .dec(s.small_frees + s.large_frees)
        .str(" frees; live ")
        .dec(s.small_live_bytes + s.large_live_bytes)
        .str(" bytes\n")
        .write();
    let mut l = os::Line::new();
    l.str("mapalloc: size classes ")
        .dec(s.small_allocs)
        .str(" allocs / ")
        .dec(s.small_frees)
        .str(" frees in ")
        .dec(s.segment_bytes >> 20)
        .str(" MiB of segments; large blocks ")
        .dec(s.large_allocs)
        .str(" allocs / ")
        .dec(s.large_frees)
        .str(" frees, ")
        .dec(s.large_cached_bytes >> 10)
        .str(" KiB cached\n")
        .write();
    let mut l = os::Line::new();
    l.str("mapalloc: heaps ")
        .dec(s.heaps_live)
        .str(" live, ")
        .dec(s.heaps_abandoned)
        .str(" abandoned; syscalls mmap ")
        .dec(s.mmap)
        .str(" munmap ")
        .dec(s.munmap)
        .str(" mprotect ")
        .dec(s.mprotect)
        .str(" madvise ")
        .dec(s.madvise)
        .str(" mremap ")
        .dec(s.mremap)
        .str("\n")
        .write();
}
