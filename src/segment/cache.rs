//! The segment cache, a part of `segment`: whole free segments kept mapped for reuse by any
//! heap, up to the retained budget (`MAPALLOC_RETAIN_MB`), and the arenas fresh segments are
//! carved from. A cached segment's dirty pages are purged once it has been
//! cached for the purge delay; beyond the budget, segments are unmapped.

use super::*;

/// Most segments the cache can hold, whatever the budget (1 GiB).
pub(super) const SEGMENT_CACHE_MAX: usize = 256;

pub(super) struct SegCache {
    segs: [*mut Segment; SEGMENT_CACHE_MAX],
    /// When each segment was cached (`os::now_ms`), in the same order: oldest first.
    since: [u64; SEGMENT_CACHE_MAX],
    pub(super) len: usize,
    /// Fresh segments mapped ahead (see [`map_arena`]) and not handed out yet: the range
    /// `[arena_next, arena_end)`, carved from the bottom up.
    pub(super) arena_next: usize,
    pub(super) arena_end: usize,
    /// The interior guards of the arena's segments (`Segment::interior`).
    arena_interior: u8,
    /// Arenas mapped so far: the first is small (see [`FIRST_ARENA_SEGMENTS`]).
    arenas: usize,
}

// SAFETY: cached segments are mapped memory owned by the cache; the lock serialises access.
unsafe impl Send for SegCache {}

pub(super) static SEG_CACHE: SpinLock<SegCache> = SpinLock::new(SegCache {
    segs: [ptr::null_mut(); SEGMENT_CACHE_MAX],
    since: [0; SEGMENT_CACHE_MAX],
    len: 0,
    arena_next: 0,
    arena_end: 0,
    arena_interior: INTERIOR_NONE,
    arenas: 0,
});

impl SegCache {
    fn get(&self, k: usize) -> (*mut Segment, u64) {
        match (self.segs.get(k), self.since.get(k)) {
            (Some(&s), Some(&t)) => (s, t),
            _ => os::internal("segment cache"),
        }
    }

    pub(super) fn push(&mut self, seg: *mut Segment, now: u64) -> bool {
        let n = self.len;
        match (self.segs.get_mut(n), self.since.get_mut(n)) {
            (Some(s), Some(t)) => {
                *s = seg;
                *t = now;
                self.len += 1;
                true
            }
            _ => false,
        }
    }

    /// Take the most recently cached segment (the one most likely still resident).
    pub(super) fn pop(&mut self) -> *mut Segment {
        if self.len == 0 {
            return ptr::null_mut();
        }
        self.len -= 1;
        self.get(self.len).0
    }

    /// Take a fresh segment from the arena, mapping a new arena when it is used up, with the
    /// state of its interior guards (`Segment::interior`). Null when out of memory.
    pub(super) fn carve(&mut self) -> (*mut Segment, u8) {
        if self.arena_next == self.arena_end {
            let want = if self.arenas == 0 {
                FIRST_ARENA_SEGMENTS
            } else {
                ARENA_SEGMENTS
            };
            let (base, n, interior) = map_arena(want);
            if base == 0 {
                return (ptr::null_mut(), INTERIOR_NONE);
            }
            self.arena_next = base;
            self.arena_end = base + n * SEGMENT_SIZE;
            self.arena_interior = interior;
            self.arenas += 1;
            RESERVED.store(n, Ordering::Relaxed);
        }
        let seg = self.arena_next;
        self.arena_next += SEGMENT_SIZE;
        RESERVED.fetch_sub(1, Ordering::Relaxed);
        (seg as *mut Segment, self.arena_interior)
    }
}

/// Segments one arena holds: fresh segments are mapped this many at a time, with their guards
/// installed by one call, instead of a map, a trim and a guard call for each.
pub(super) const ARENA_SEGMENTS: usize = 16;

/// Segments of the process's first arena. Installing guard markers makes the kernel build
/// the page tables of every range they fence: for sixteen segments, 100-120 us of kernel time
/// and 64 KiB of page tables, which a short-lived program (`sed`, `git log -1`) that fills one
/// or two segments paid at start-up. Programs that go on to map more get sixteen at a time.
pub(super) const FIRST_ARENA_SEGMENTS: usize = 2;

/// Map an arena of fresh segments, aligned, with the guards of every segment (see the layout
/// in the module doc) installed: `want` of them (at most `ARENA_SEGMENTS`), or one when the
/// kernel cannot give that much or the address space is limited: two syscalls for sixteen
/// segments, plus the limit's `getrlimit` (`os::map_aligned` leaves the alignment slack, under
/// one segment, mapped and untouched instead of trimming it). Returns (base, segments, state
/// of their interior guards), base 0 when out of memory.
///
/// An arena is one mapping (guard markers split none) that is never unmapped as a whole:
/// each of its segments is unmapped on its own when the segment cache lets it go.
pub(super) fn map_arena(want: usize) -> (usize, usize, u8) {
    let want = want.clamp(1, ARENA_SEGMENTS);
    // Short of address space (`RLIMIT_AS`) when the arena cannot be had: one segment, placed
    // without slack first (the slack would use as much address space again). Under a limit,
    // one segment without slack from the start: even the small first arena, with its slack,
    // took 12 MiB of a program's 16 MiB of headroom (`tests/rlimit_as.rs`).
    let limited = os::address_space_limited();
    let plan = if limited {
        [(1, true), (1, false), (1, false)]
    } else {
        [(want, false), (1, true), (1, false)]
    };
    for (n, exact) in plan {
        let (base, (raw, total)) = if exact {
            let b = os::map_aligned_exact(SEGMENT_SIZE, SEGMENT_SIZE);
            (b, (b, SEGMENT_SIZE))
        } else {
            os::map_aligned(n * SEGMENT_SIZE, SEGMENT_SIZE)
        };
        if base.is_null() {
            continue;
        }
        if let Some(interior) = guard_fresh(base as usize, n) {
            return (base as usize, n, interior);
        }
        // SAFETY: our own fresh mapping, slack and all.
        unsafe { os::release(raw, total) };
    }
    (0, 0, INTERIOR_NONE)
}

/// Interior guards made with `mprotect` in all segments mapped (see [`INTERIOR_GUARD_BUDGET`]).
static INTERIOR_USED: AtomicUsize = AtomicUsize::new(0);

/// Install the guards of the `n` fresh segments from `base` (or the unused emergency segment):
/// the metadata and end guards, and the interior guards where the budget allows (always
/// with guard markers), with one call. Returns the state of their interior guards
/// (`Segment::interior`), or `None` when the kernel refused even the metadata and end guards.
///
/// When the budget is spent, or the kernel refused the interior guards (`ENOMEM`: no
/// mapping left), the segments go without them: fewer guards, the same layout. A set the
/// kernel refused half-way may leave some slots guarded, uncounted; no block lies there.
pub(super) fn guard_fresh(base: usize, n: usize) -> Option<u8> {
    let count = n * INTERIOR_GUARDS;
    let wanted = os::HARDENED
        && (os::guard_markers()
            || INTERIOR_USED.load(Ordering::Relaxed) + count <= INTERIOR_GUARD_BUDGET);
    if wanted && install_guards(base, n, true) {
        // Known only now (the first guard ever tells): were they markers?
        if os::guard_markers() {
            return Some(INTERIOR_MARKERS);
        }
        INTERIOR_USED.fetch_add(count, Ordering::Relaxed);
        return Some(INTERIOR_COUNTED);
    }
    install_guards(base, n, false).then_some(INTERIOR_NONE)
}

/// Install the guards of the `n` fresh segments from `base` (see the layout in the module
/// doc), the interior ones too if `interior`, with one call. False when the kernel refused.
fn install_guards(base: usize, n: usize, interior: bool) -> bool {
    const PER_SEGMENT: usize = 2 + INTERIOR_GUARDS;
    let (meta_end, data_start) = layout();
    let ps = os::page_size();
    let slot = interior_slot();
    let mut ranges = [libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }; PER_SEGMENT * ARENA_SEGMENTS];
    let mut len = 0;
    let mut push = |at: usize, bytes: usize| {
        if let Some(r) = ranges.get_mut(len) {
            r.iov_base = at as *mut libc::c_void;
            r.iov_len = bytes;
            len += 1;
        }
    };
    for i in 0..n.min(ARENA_SEGMENTS) {
        let seg = base + i * SEGMENT_SIZE;
        push(seg + meta_end, data_start - meta_end);
        if interior && slot != 0 {
            for off in interior_offsets() {
                push(seg + off, slot);
            }
        }
        push(seg + SEGMENT_SIZE - ps, ps);
    }
    // SAFETY: the guards lie inside segments just mapped (or the unused emergency segment),
    // in regions that hold no data: the metadata guard, the interior guards' slots (never
    // part of a page's block area) and the end guard.
    unsafe { os::guard_many(ranges.get(..len).unwrap_or(&[])) }
}

/// Segments currently mapped (in use or cached).
pub(super) static MAPPED: AtomicUsize = AtomicUsize::new(0);
/// Segments in the cache.
pub(super) static CACHED: AtomicUsize = AtomicUsize::new(0);
/// Fresh segments mapped in the arena and not handed out yet.
pub(super) static RESERVED: AtomicUsize = AtomicUsize::new(0);
/// Sum of `dirty_bytes` over mapped segments: segment memory that may be resident.
pub(super) static COMMITTED: AtomicUsize = AtomicUsize::new(0);

pub fn mapped_segments() -> usize {
    MAPPED.load(Ordering::Relaxed)
}

pub fn cached_segments() -> usize {
    CACHED.load(Ordering::Relaxed)
}

/// Fresh segments mapped ahead in the arena (not touched yet, so not resident).
pub fn reserved_segments() -> usize {
    RESERVED.load(Ordering::Relaxed)
}

/// Bytes of segment memory that may be resident (metadata and pages used since their last
/// purge).
pub fn committed_bytes() -> usize {
    COMMITTED.load(Ordering::Relaxed)
}

/// Guard bytes of one segment (the slots of its interior guards counted, installed or not:
/// no block ever lies there).
pub fn guard_bytes_per_segment() -> usize {
    let (meta_end, data_start) = layout();
    data_start - meta_end + os::page_size() + INTERIOR_GUARDS * interior_slot()
}

/// Unmap every cached segment; returns the bytes released.
pub fn trim_cache() -> usize {
    let mut n = 0;
    loop {
        let seg = SEG_CACHE.lock().pop();
        if seg.is_null() {
            break;
        }
        CACHED.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: popped from the cache: ours alone, nothing live.
        n += unsafe { (*seg).dirty_bytes };
        release(seg);
    }
    n
}

/// Purge the dirty pages of segments cached at or before `cutoff`; returns when the oldest
/// segment still dirty was cached (`u64::MAX` if none), and adds the bytes purged to
/// `*purged`.
pub fn cache_decay(cutoff: u64, purged: &mut usize) -> u64 {
    if CACHED.load(Ordering::Relaxed) == 0 {
        return u64::MAX;
    }
    let mut next = u64::MAX;
    // Purging under the lock: other threads wait only when they need the cache itself, and
    // this runs at most once per purge delay.
    let c = SEG_CACHE.lock();
    let mut batch = os::PurgeBatch::new();
    for k in 0..c.len {
        let (seg, since) = c.get(k);
        // SAFETY: cached segments are ours alone while the lock is held.
        let s = unsafe { &mut *seg };
        if s.dirty_bytes <= layout().0 {
            continue;
        }
        if since <= cutoff {
            *purged += s.purge_pages(u64::MAX, &mut batch).1;
        } else {
            next = next.min(since);
        }
    }
    // Before the lock goes: a segment popped from the cache may be written at once.
    batch.flush();
    next
}

pub(super) fn release(seg: *mut Segment) {
    // SAFETY: callers pass a segment of ours that nothing uses any more.
    super::tail_guards::released(unsafe { &*seg });
    // SAFETY: as above.
    if unsafe { (*seg).interior } == INTERIOR_COUNTED {
        INTERIOR_USED.fetch_sub(INTERIOR_GUARDS, Ordering::Relaxed);
    }
    segmap_set(seg as usize, false);
    MAPPED.fetch_sub(1, Ordering::Relaxed);
    // SAFETY: callers pass a segment of ours with nothing live, on no list, known to no heap.
    unsafe {
        COMMITTED.fetch_sub((*seg).dirty_bytes, Ordering::Relaxed);
        os::release(seg.cast(), SEGMENT_SIZE);
    }
}

/// In the child of `fork` (see `init`): if a thread that did not follow into the child held
/// the segment-cache lock, release it and empty the cache and the arena, which that thread
/// may have left half updated. The cached segments and the rest of the arena stay mapped,
/// unused (address space only: their pages were purged or are shared with the parent until
/// written); nothing is ever handed out twice.
///
/// # Safety
/// The calling thread is the only thread of the process.
pub unsafe fn after_fork_child() {
    // SAFETY: per the contract.
    if let Some(mut c) = unsafe { SEG_CACHE.take_orphan() } {
        c.len = 0;
        c.arena_next = 0;
        c.arena_end = 0;
        CACHED.store(0, Ordering::Relaxed);
        RESERVED.store(0, Ordering::Relaxed);
    }
}
