//! Statistics: counters gathered from every heap, the large-block table, the segment layer
//! and the OS layer.
//!
//! Per-class counters are kept per thread heap, written by their owner with plain stores, and
//! merged here on read, so the fast path pays no atomic operation for them. A free is counted
//! by the thread that frees (in its own heap, or in a shared atomic counter when it has none),
//! so that once the threads are quiet `allocs - frees` is exactly the number of live blocks,
//! remote frees included. While threads run, a snapshot can be off by the operations that
//! race with it.

use core::sync::atomic::Ordering::Relaxed;

use crate::size_class::{NUM_CLASSES, class_size};
use crate::{heap, large, os, segment};

/// Counters of one size class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Block size of the class.
    pub block_size: u64,
    pub allocs: u64,
    pub frees: u64,
    /// `(allocs - frees) * block_size`.
    pub live_bytes: u64,
    /// The most bytes of this class out at once, as sampled by each thread heap when one of
    /// its pages fills up, summed over heaps: an upper bound of the true peak, within a page
    /// of blocks per heap.
    pub peak_bytes: u64,
}

/// A snapshot of the allocator's counters.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// Size-class allocations and frees, all classes.
    pub small_allocs: u64,
    pub small_frees: u64,
    /// Bytes of size-class blocks allocated and not yet freed.
    pub small_live_bytes: u64,
    /// Per size class (index: class number, ascending block size).
    pub classes: [ClassStats; NUM_CLASSES],
    pub large_allocs: u64,
    pub large_frees: u64,
    pub large_live_bytes: u64,
    /// Freed large blocks kept mapped for reuse.
    pub large_cached_bytes: u64,
    /// Large blocks mapped (live and cached).
    pub large_blocks: u64,
    /// Bytes of segments mapped (in use or cached), and how many of them sit in the cache.
    pub segment_bytes: u64,
    pub segments_cached: u64,
    /// Fresh segments mapped ahead of use (never touched, so not resident); not counted in
    /// `segment_bytes`.
    pub segments_reserved: u64,
    /// Bytes mapped by mapalloc: segments (reserved ones too), large blocks with their guards.
    pub mapped_bytes: u64,
    /// Bytes that may be resident: segment metadata, pages used since their last purge, and
    /// large blocks (live or cached). What is not committed was purged or never touched.
    pub committed_bytes: u64,
    /// Bytes given back with `madvise` since start (cumulative).
    pub purged_bytes: u64,
    /// `PROT_NONE` guard bytes currently mapped.
    pub guard_bytes: u64,
    /// Mappings (VMAs) mapalloc's memory occupies at most: 4 per segment (metadata, guard,
    /// pages, end guard) and 3 per large block (guard, block, guard); the kernel merges
    /// neighbours with equal protection, so the real count can be lower.
    pub mappings: u64,
    /// Heaps owned by a thread: live threads, and threads that ended without mapalloc's exit
    /// hook until they are found gone (see `heap`'s module doc).
    pub heaps_live: u64,
    /// Heaps of ended threads waiting to be adopted by new threads.
    pub heaps_abandoned: u64,
    /// Syscalls by kind since start.
    pub mmap: u64,
    pub munmap: u64,
    pub mprotect: u64,
    pub madvise: u64,
    pub mremap: u64,
}

/// Gather the counters. Never allocates.
pub fn summary() -> Stats {
    let mut classes = [ClassStats::default(); NUM_CLASSES];
    heap::for_each_heap(|h| {
        for (c, cs) in classes.iter_mut().enumerate() {
            cs.allocs += h.allocs[c].load(Relaxed);
            cs.frees += h.frees[c].load(Relaxed);
            cs.peak_bytes += h.peak[c].load(Relaxed);
        }
    });
    let mut s = Stats {
        small_allocs: 0,
        small_frees: 0,
        small_live_bytes: 0,
        classes,
        large_allocs: 0,
        large_frees: 0,
        large_live_bytes: 0,
        large_cached_bytes: 0,
        large_blocks: 0,
        segment_bytes: 0,
        segments_cached: 0,
        segments_reserved: 0,
        mapped_bytes: 0,
        committed_bytes: 0,
        purged_bytes: 0,
        guard_bytes: 0,
        mappings: 0,
        heaps_live: 0,
        heaps_abandoned: 0,
        mmap: 0,
        munmap: 0,
        mprotect: 0,
        madvise: 0,
        mremap: 0,
    };
    for (c, cs) in s.classes.iter_mut().enumerate() {
        cs.frees += heap::HEAPLESS_FREES[c].load(Relaxed);
        let size = class_size(c) as u64;
        cs.block_size = size;
        cs.live_bytes = cs.allocs.saturating_sub(cs.frees) * size;
        cs.peak_bytes *= size;
        s.small_allocs += cs.allocs;
        s.small_frees += cs.frees;
        s.small_live_bytes += cs.live_bytes;
    }
    let l = large::counters();
    let ps = os::page_size() as u64;
    s.large_live_bytes = l.live_bytes as u64;
    s.large_cached_bytes = l.cached_bytes as u64;
    s.large_allocs = l.allocs;
    s.large_frees = l.frees;
    s.large_blocks = l.blocks as u64;
    let segs = segment::mapped_segments() as u64;
    s.segment_bytes = segs * segment::SEGMENT_SIZE as u64;
    s.segments_cached = segment::cached_segments() as u64;
    let large_bytes = s.large_live_bytes + s.large_cached_bytes;
    s.segments_reserved = segment::reserved_segments() as u64;
    let reserved_bytes = s.segments_reserved * segment::SEGMENT_SIZE as u64;
    s.mapped_bytes = s.segment_bytes + reserved_bytes + large_bytes + s.large_blocks * 2 * ps;
    s.committed_bytes = segment::committed_bytes() as u64 + large_bytes;
    s.purged_bytes = os::SYSCALLS.purged_bytes.load(Relaxed) as u64;
    s.guard_bytes = (segs + s.segments_reserved) * segment::guard_bytes_per_segment() as u64
        + s.large_blocks * 2 * ps;
    s.mappings = segs * 4 + s.large_blocks * 3;
    let (hl, ha) = heap::heap_counts();
    s.heaps_live = hl as u64;
    s.heaps_abandoned = ha as u64;
    s.mmap = os::SYSCALLS.mmap.load(Relaxed) as u64;
    s.munmap = os::SYSCALLS.munmap.load(Relaxed) as u64;
    s.mprotect = os::SYSCALLS.mprotect.load(Relaxed) as u64;
    s.madvise = os::SYSCALLS.madvise.load(Relaxed) as u64;
    s.mremap = os::SYSCALLS.mremap.load(Relaxed) as u64;
    s
}

fn mib(b: u64) -> u64 {
    (b + (1 << 19)) >> 20
}

/// Print the summary to stderr: a few lines, each starting with `mapalloc`, then the busiest
/// size classes. Never allocates.
pub fn print() {
    print_to(os::Sink::Stderr);
}

/// [`print`] to `sink`.
pub fn print_to(sink: os::Sink) {
    let s = summary();
    let mut l = os::Line::new();
    l.str("mapalloc: ")
        .dec(s.small_allocs + s.large_allocs)
        .str(" allocations, ")
        .dec(s.small_frees + s.large_frees)
        .str(" frees; live ")
        .dec(s.small_live_bytes + s.large_live_bytes)
        .str(" bytes\n")
        .write_to(sink);
    let mut l = os::Line::new();
    l.str("mapalloc: size classes ")
        .dec(s.small_allocs)
        .str(" allocs / ")
        .dec(s.small_frees)
        .str(" frees in ")
        .dec(s.segment_bytes >> 20)
        .str(" MiB of segments (")
        .dec(s.segments_cached)
        .str(" cached); large blocks ")
        .dec(s.large_allocs)
        .str(" allocs / ")
        .dec(s.large_frees)
        .str(" frees, ")
        .dec(s.large_cached_bytes >> 10)
        .str(" KiB cached\n")
        .write_to(sink);
    let mut l = os::Line::new();
    l.str("mapalloc: memory mapped ")
        .dec(mib(s.mapped_bytes))
        .str(" MiB, committed ")
        .dec(mib(s.committed_bytes))
        .str(" MiB, purged ")
        .dec(mib(s.purged_bytes))
        .str(" MiB in all; guards ")
        .dec(s.guard_bytes >> 10)
        .str(" KiB; at most ")
        .dec(s.mappings)
        .str(" mappings\n")
        .write_to(sink);
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
        .write_to(sink);
    // The five classes with the most allocations.
    let mut shown = [usize::MAX; 5];
    for slot in 0..shown.len() {
        let mut best: Option<(usize, ClassStats)> = None;
        for (c, cs) in s.classes.iter().enumerate() {
            if cs.allocs == 0 || shown.contains(&c) {
                continue;
            }
            if best.is_none_or(|(_, b)| cs.allocs > b.allocs) {
                best = Some((c, *cs));
            }
        }
        let Some((c, cs)) = best else {
            break;
        };
        if let Some(s) = shown.get_mut(slot) {
            *s = c;
        }
        let mut l = os::Line::new();
        l.str("mapalloc:   class ")
            .dec(cs.block_size)
            .str(" B: ")
            .dec(cs.allocs)
            .str(" allocs, ")
            .dec(cs.frees)
            .str(" frees, live ")
            .dec(cs.live_bytes)
            .str(" B, peak ")
            .dec(cs.peak_bytes)
            .str(" B\n")
            .write_to(sink);
    }
}
