//! Thread heaps: the fast path, the per-class page queues, remote frees and thread exit.
//!
//! # Ownership
//! Every thread that allocates gets a [`Heap`]; a heap owns segments and their pages. Only the
//! owner touches a page's local free list, its counters and its bitmap bits with plain
//! (non-RMW) operations, so `malloc` and a `free` on the owning thread take no lock and no
//! atomic read-modify-write.
//!
//! # Remote frees
//! A block freed by another thread is pushed on its page's atomic `thread_free` list (one CAS)
//! and collected by the owner the next time it needs that page. A page that had no free block
//! left sits on the heap's *full* list, where the owner never looks; the first remote free into
//! it therefore also pushes the page on the heap's *notify* stack (`full_state` FULL ->
//! NOTIFIED), which the owner drains at the start of its slow path. Marking a page full and a
//! remote push race like Dekker's algorithm: the owner stores FULL then re-reads `thread_free`,
//! the remote pushes then reads `full_state`, all `SeqCst`, so at least one of them sees the
//! other and no page is stranded on the full list.
//!
//! # Thread exit
//! A `pthread_key_create` destructor (registered at initialisation; `thread_local!` with a
//! `Drop` type would register a destructor through an allocating path) marks the thread DONE
//! and puts its heap on the abandoned list, from which the next new thread adopts it whole:
//! its pages, their remote-free lists and its notify stack keep working throughout, so blocks
//! of an exited thread can be freed by anyone at any time. A DONE thread (other libraries'
//! destructors run after ours) frees everything as a remote free and allocates from a shared
//! backup heap under a lock.
//!
//! # Heaps of threads that ended without the hook
//! glibc runs key destructors in rounds, each round visiting the keys in index order, and stops
//! after `PTHREAD_DESTRUCTOR_ITERATIONS` (4) rounds. A thread whose *first* allocation happens
//! in a destructor of the last round, after our key was visited, gets a heap and a key value
//! that no destructor will ever see; so does a thread that ends without destructors at all
//! (raw `clone` threads, `SYS_exit`). Nothing in the thread can tell that it is exiting, so
//! such heaps are reclaimed lazily instead: every heap records its owner as (fork epoch,
//! process id, thread id), and when the pool has no abandoned heap to hand out and the live
//! count has doubled since the last look, `pool_acquire` asks the kernel about each live heap's
//! owner (`tgkill(pid, tid, 0)`) and abandons the heaps whose thread no longer exists (`trim`
//! looks too). This is sound because:
//! - a thread the kernel reports gone (`ESRCH`) never runs again, and it left its heap
//!   consistent: it returned from its last allocator call before it exited (a thread cancelled
//!   asynchronously inside `malloc` is undefined behaviour by POSIX and not covered);
//! - thread ids are reused: a reused id makes a dead owner look alive, which only delays the
//!   reclaim, never the other way round;
//! - after `fork`, the child's only thread is the forking one under a new id, and every other
//!   heap's owner is gone, but those heaps may have been in the middle of an operation. The
//!   child handler (`after_fork_child`) bumps the epoch, so no heap stamped before the fork is
//!   ever reclaimed by scanning, and re-stamps the forking thread's heap. A fork that runs no
//!   handlers (`_Fork`, raw `clone`) is detected by a page mapped with `MADV_WIPEONFORK`: the
//!   kernel zeroes it in every child, and a zero token turns the scan off in that process;
//! - the dead thread's writes to its heap are visible to the scanner: the kernel's thread exit
//!   and the `tgkill` lookup synchronise (locks and RCU in the kernel), and the scanner hands
//!   the heap on through the pool lock.
//!
//! On a kernel without `MADV_WIPEONFORK` (before 4.14) heaps are never reclaimed this way.

use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::remote::{self, Block, NOTIFIED};
use crate::segment::{self, Kind, NUM_KINDS, Page, Segment};
use crate::size_class::{MIN_ALIGN, NUM_CLASSES, ZERO_CLASS, class_size};
use crate::{large, os};

/// Per-class arrays have a power-of-two length and are indexed with `slot(class)`, so no
/// index can be out of bounds and no bounds-check panic (which would run the panic hook,
/// which may allocate) is reachable from `malloc` or `free`. Slots >= NUM_CLASSES stay empty.
const CLASS_SLOTS: usize = NUM_CLASSES.next_power_of_two();

#[inline(always)]
pub(crate) const fn slot(class: usize) -> usize {
    class & (CLASS_SLOTS - 1)
}
use crate::sync::SpinLock;
use crate::sync::atomic::AtomicPtr;
use crate::tls;

#[derive(Clone, Copy)]
struct PageQueue {
    first: *mut Page,
    last: *mut Page,
}

/// A thread's heap. A zeroed `Heap` is a valid empty heap.
#[repr(C)]
pub struct Heap {
    queues: [PageQueue; CLASS_SLOTS],
    full: PageQueue,
    /// Pages on the full list that received a remote free (pushed by other threads).
    notify: AtomicPtr<Page>,
    /// Per kind: segments that still have unused pages (doubly linked).
    segs: [*mut Segment; NUM_KINDS],
    /// Statistics per class, written by the owner with plain load+store (no atomic RMW) and
    /// read by any thread. `allocs`: blocks this heap handed out; `frees`: blocks this thread
    /// freed, whoever owned them; `remote_out`: the part of `frees` that went to another
    /// heap; `remote_in`: blocks of this heap freed by others and collected. So the blocks of
    /// this heap still out are `allocs - (frees - remote_out) - remote_in`, whose highest value
    /// seen when a page fills up is `peak`.
    pub allocs: [AtomicU64; CLASS_SLOTS],
    pub frees: [AtomicU64; CLASS_SLOTS],
    pub remote_out: [AtomicU64; CLASS_SLOTS],
    pub remote_in: [AtomicU64; CLASS_SLOTS],
    pub peak: [AtomicU64; CLASS_SLOTS],
    /// Registry of every heap ever created, and the abandoned stack.
    next_all: *mut Heap,
    next_abandoned: *mut Heap,
    /// When the next purge is due (`os::now_ms`), 0 when nothing waits (owner only).
    purge_due: u64,
    /// When the purge deadline was last checked (see [`purge_tick`]).
    last_check: u64,
    /// Strict mode's per-heap state (quarantine, random generator), mapped on first use.
    pub strict: *mut crate::strict::HeapState,
    /// The owning thread, from [`owner_stamp`]; 0 when no thread owns the heap (abandoned, the
    /// backup heap). Written under the pool lock, or by the forking thread in the child.
    owner: AtomicU64,
}

/// Bits of a thread or process id in an owner stamp (Linux's `PID_MAX_LIMIT` is 2^22).
const ID_BITS: u32 = 22;
const ID_MASK: u64 = (1 << ID_BITS) - 1;
/// The fork epoch takes the remaining 20 bits.
const EPOCH_SHIFT: u32 = 2 * ID_BITS;

/// How many `fork`s lie between this process and the one that loaded the allocator (counted
/// by our child handler): heaps stamped in an earlier epoch are never reclaimed by scanning.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// A page the kernel zeroes in the child of any fork (see the module doc); holds 1 while owner
/// stamps can be trusted. Null until initialisation, or when the kernel lacks
/// `MADV_WIPEONFORK`.
static FORK_TOKEN: core::sync::atomic::AtomicPtr<AtomicU64> =
    core::sync::atomic::AtomicPtr::new(ptr::null_mut());

/// Map the fork token (once, from `init`). Never allocates.
pub fn init_fork_token() {
    let p = os::map_wipe_on_fork() as *mut AtomicU64;
    if !p.is_null() {
        // SAFETY: a fresh, page-aligned, zeroed mapping of ours.
        unsafe { (*p).store(1, Ordering::Relaxed) };
        FORK_TOKEN.store(p, Ordering::Release);
    }
}

/// The owner stamp of the calling thread: (fork epoch, process id, thread id), never 0.
/// 0 (a heap never reclaimed by scanning) if an id does not fit.
fn owner_stamp() -> u64 {
    let (pid, tid) = os::process_and_thread_id();
    let (pid, tid) = (pid as u64, tid as u64);
    if pid > ID_MASK || tid > ID_MASK || tid == 0 {
        return 0;
    }
    let epoch = EPOCH.load(Ordering::Relaxed) & ((1 << (64 - EPOCH_SHIFT)) - 1);
    (epoch << EPOCH_SHIFT) | (pid << ID_BITS) | tid
}

/// In the child of `fork`, from our `pthread_atfork` child handler: a new epoch (heaps of the
/// threads that did not follow into the child are never reclaimed by scanning, since they may
/// have been in use at the fork), the forking thread's heap stamped with its new ids, and the
/// fork token set again, and the pool's locks repaired if a vanished thread held them. Runs
/// before any other thread exists in the child; waits for no lock (the fork may have come
/// from a signal handler that interrupted the allocator).
///
/// # Safety
/// The calling thread is the only thread of the process.
pub unsafe fn after_fork_child() {
    // SAFETY: per the contract.
    unsafe { repair_after_fork() };
    EPOCH.fetch_add(1, Ordering::Relaxed);
    let h = tls_heap();
    if h as usize > DONE as usize {
        // SAFETY: this thread's own heap.
        unsafe { (*h).owner.store(owner_stamp(), Ordering::Relaxed) };
    }
    let t = FORK_TOKEN.load(Ordering::Relaxed);
    if !t.is_null() {
        // SAFETY: the token page is mapped for ever once published.
        unsafe { (*t).store(1, Ordering::Relaxed) };
    }
}

/// Marks a thread whose exit hook has run.
pub(crate) const DONE: *mut Heap = ptr::without_provenance_mut(1);

#[inline(always)]
pub(crate) fn tls_heap() -> *mut Heap {
    tls::get()
}

/// The first page of `h`'s queue for class `cls` (null when empty).
///
/// # Safety
/// `h` is owned by the calling thread (or locked by it).
#[inline(always)]
pub(crate) unsafe fn first_page(h: *mut Heap, cls: usize) -> *mut Page {
    // SAFETY: per the contract.
    unsafe { (*h).queues[slot(cls)].first }
}

// ---------------------------------------------------------------------------------------------
// Heap pool: heaps live in chunks (a static one, then mapped ones) and are never unmapped (remote frees may reach them
// at any time), only abandoned and adopted.

struct Pool {
    all: *mut Heap,
    abandoned: *mut Heap,
    chunk: usize,
    chunk_end: usize,
    live: usize,
    abandoned_count: usize,
    /// Look for heaps of ended threads when `live` reaches this (see the module doc).
    scan_at: usize,
}

/// The pool's first chunk, in static memory: a process with few threads maps none (one
/// `mmap` less for every process).
#[repr(C, align(4096))]
struct FirstChunk(core::cell::UnsafeCell<[u8; HEAP_CHUNK]>);

// SAFETY: the chunk is handed out once, under the pool lock, and used as mapped chunks are.
unsafe impl Sync for FirstChunk {}

static FIRST_CHUNK: FirstChunk = FirstChunk(core::cell::UnsafeCell::new([0; HEAP_CHUNK]));
const _: () = assert!(core::mem::align_of::<Heap>() <= 64);

/// The live-heap count below which `pool_acquire` does not look for heaps of ended threads.
const SCAN_MIN: usize = 32;

// SAFETY: the pool's pointers refer to mapped heap memory that lives forever; the lock
// serialises access.
unsafe impl Send for Pool {}

static POOL: SpinLock<Pool> = SpinLock::new(Pool {
    all: ptr::null_mut(),
    abandoned: ptr::null_mut(),
    chunk: 0,
    chunk_end: 0,
    live: 0,
    abandoned_count: 0,
    scan_at: 0,
});

/// The heap used by threads that allocate after their exit hook ran.
static BACKUP: SpinLock<usize> = SpinLock::new(0);

const HEAP_CHUNK: usize = 256 * 1024;

/// A heap for a new owner, stamped `owner` (0: not reclaimable by scanning).
fn pool_acquire(owner: u64) -> *mut Heap {
    let mut pool = POOL.lock();
    let mut h = pool.abandoned;
    if h.is_null() && pool.live >= pool.scan_at.max(SCAN_MIN) {
        // Amortised: the next scan waits until the live count doubles again.
        reclaim_dead(&mut pool);
        pool.scan_at = pool.live.saturating_mul(2);
        h = pool.abandoned;
    }
    if !h.is_null() {
        // SAFETY: heaps on the abandoned stack are valid and unused.
        unsafe {
            pool.abandoned = (*h).next_abandoned;
            (*h).owner.store(owner, Ordering::Relaxed);
        }
        pool.abandoned_count -= 1;
        pool.live += 1;
        return h;
    }
    let size = (core::mem::size_of::<Heap>() + 63) & !63;
    if pool.chunk_end == 0 && size <= HEAP_CHUNK {
        let c = FIRST_CHUNK.0.get() as usize;
        pool.chunk = c;
        pool.chunk_end = c + HEAP_CHUNK;
    }
    if pool.chunk + size > pool.chunk_end {
        let Some(len) = os::page_round_up(HEAP_CHUNK.max(size)) else {
            return ptr::null_mut();
        };
        let c = os::map(len, true);
        if c.is_null() {
            return ptr::null_mut();
        }
        pool.chunk = c as usize;
        pool.chunk_end = c as usize + len;
    }
    let h = pool.chunk as *mut Heap;
    pool.chunk += size;
    // SAFETY: fresh zeroed memory is a valid empty heap; link it into the registry.
    unsafe {
        (*h).next_all = pool.all;
        (*h).owner.store(owner, Ordering::Relaxed);
    }
    pool.all = h;
    pool.live += 1;
    h
}

/// Abandon every live heap whose owner thread no longer exists (see the module doc). Returns
/// how many were reclaimed.
fn reclaim_dead(pool: &mut Pool) -> usize {
    let t = FORK_TOKEN.load(Ordering::Acquire);
    // SAFETY: the token page is mapped for ever once published.
    if t.is_null() || unsafe { (*t).load(Ordering::Relaxed) } != 1 {
        return 0; // no token, or a fork that ran no handler of ours: stamps are unreliable
    }
    let epoch = EPOCH.load(Ordering::Relaxed) & ((1 << (64 - EPOCH_SHIFT)) - 1);
    let mut n = 0;
    let mut h = pool.all;
    while !h.is_null() {
        // SAFETY: heaps are never unmapped; the pool lock serialises owner changes (except the
        // child-of-fork re-stamp, which runs before any other thread exists).
        unsafe {
            let o = (*h).owner.load(Ordering::Acquire);
            if o != 0
                && o >> EPOCH_SHIFT == epoch
                && os::thread_gone(((o >> ID_BITS) & ID_MASK) as u32, (o & ID_MASK) as u32)
            {
                (*h).owner.store(0, Ordering::Relaxed);
                (*h).next_abandoned = pool.abandoned;
                pool.abandoned = h;
                pool.abandoned_count += 1;
                pool.live -= 1;
                n += 1;
            }
            h = (*h).next_all;
        }
    }
    n
}

/// Visit every heap ever created (for statistics). `f` must not allocate.
pub fn for_each_heap(mut f: impl FnMut(&Heap)) {
    let pool = POOL.lock();
    let mut h = pool.all;
    while !h.is_null() {
        // SAFETY: heaps are never unmapped; `f` only reads atomics.
        unsafe {
            f(&*h);
            h = (*h).next_all;
        }
    }
}

/// Live and abandoned heap counts.
pub fn heap_counts() -> (usize, usize) {
    let pool = POOL.lock();
    (pool.live, pool.abandoned_count)
}

/// The thread-exit hook (a `pthread_key_create` destructor).
pub extern "C" fn thread_exit(arg: *mut libc::c_void) {
    let h = arg as *mut Heap;
    tls::set(DONE);
    if h.is_null() || h == DONE {
        return;
    }
    // SAFETY: the exiting thread still owns `h`: nobody else uses it until it is abandoned.
    unsafe { exit_purge(h) };
    let mut pool = POOL.lock();
    // SAFETY: the exiting thread owned `h` and has let go of it (TLS says DONE).
    unsafe {
        (*h).owner.store(0, Ordering::Relaxed);
        (*h).next_abandoned = pool.abandoned;
    }
    pool.abandoned = h;
    pool.abandoned_count += 1;
    pool.live -= 1;
}

/// In the child of `fork` (see `init`): release the pool and backup-heap locks if a thread
/// that did not follow into the child held them, dropping what it may have left half done.
/// The abandoned stack is forgotten (its heaps stay in the registry, and in use by nothing:
/// their blocks can still be freed), the chunk being carved is given up, and a half-used
/// backup heap is replaced by a fresh one on next use. Every step leaks at most memory that
/// the child could not have used safely; none can hand out a block twice.
///
/// # Safety
/// The calling thread is the only thread of the process.
unsafe fn repair_after_fork() {
    // SAFETY: per the contract.
    if let Some(mut pool) = unsafe { POOL.take_orphan() } {
        pool.abandoned = ptr::null_mut();
        pool.abandoned_count = 0;
        // Not 0: a zero end means "the static first chunk is still unused".
        pool.chunk = 1;
        pool.chunk_end = 1;
    }
    // SAFETY: per the contract.
    if let Some(mut b) = unsafe { BACKUP.take_orphan() } {
        *b = 0;
    }
}

// ---------------------------------------------------------------------------------------------
// Allocation

/// Allocate a block of class `cls`. Null when out of memory.
#[inline(always)]
pub fn alloc(cls: usize) -> *mut u8 {
    let h = tls_heap();
    if h as usize > DONE as usize {
        // SAFETY: a pointer above DONE in our TLS is this thread's own heap.
        unsafe { heap_alloc(h, cls) }
    } else {
        alloc_no_heap(cls)
    }
}

#[cold]
#[inline(never)]
fn alloc_no_heap(cls: usize) -> *mut u8 {
    let h = tls_heap();
    if h.is_null() {
        let h = new_thread_heap();
        if h.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: just installed as this thread's heap.
        return unsafe { heap_alloc(h, cls) };
    }
    // After thread exit: the shared backup heap, under its lock.
    let mut b = BACKUP.lock();
    if *b == 0 {
        *b = pool_acquire(0) as usize;
        if *b == 0 {
            return ptr::null_mut();
        }
    }
    // SAFETY: the lock gives this thread exclusive use of the backup heap.
    unsafe { heap_alloc(*b as *mut Heap, cls) }
}

#[cold]
fn new_thread_heap() -> *mut Heap {
    crate::init::ensure();
    // Again for each new thread heap: a no-op once loaded, and a retry if the first
    // allocation came before libc had set up the environment.
    crate::config::load();
    let h = pool_acquire(owner_stamp());
    if h.is_null() {
        return h;
    }
    tls::set(h);
    // After the TLS slot is set: pthread_setspecific may itself call malloc (keys >= 32),
    // which then finds the heap ready.
    crate::init::register_thread(h.cast());
    h
}

/// # Safety
/// `h` is owned by the calling thread (or locked by it).
#[inline(always)]
unsafe fn heap_alloc(h: *mut Heap, cls: usize) -> *mut u8 {
    // SAFETY: the caller owns `h`; queue pages are owned by `h`.
    unsafe {
        let page = (*h).queues[slot(cls)].first;
        if !page.is_null() {
            let b = (*page).free;
            if !b.is_null() {
                (*page).free = (*b).next;
                (*page).used += 1;
                mark_live(b as usize);
                bump(&(*h).allocs[slot(cls)], 1);
                return b.cast();
            }
        }
        alloc_slow(h, cls)
    }
}

#[inline(always)]
pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Set the live bit of the block at `p` (owner only).
#[inline(always)]
pub(crate) fn mark_live(p: usize) {
    if !os::HARDENED {
        return;
    }
    let seg = (p & !segment::SEGMENT_MASK) as *const Segment;
    // SAFETY: `p` is a block of a segment of ours.
    let (w, bit) = unsafe { (*seg).bit(p) };
    w.store(w.load(Ordering::Relaxed) | bit, Ordering::Relaxed);
}

/// Blocks of fresh page memory built into the free list at a time: about one OS page worth,
/// so a page's memory is touched only as it is used.
const EXTEND_BYTES: usize = 4096;

#[cold]
#[inline(never)]
unsafe fn alloc_slow(h: *mut Heap, cls: usize) -> *mut u8 {
    if cls == ZERO_CLASS {
        // A zero-size request (see `size_class::class_or_zero`): an inaccessible slot, or a
        // block of the smallest class when no slot can be had.
        let p = crate::zero::alloc(MIN_ALIGN);
        if p.is_null() {
            // SAFETY: the caller owns `h`.
            return unsafe { heap_alloc(h, 0) };
        }
        return p;
    }
    // SAFETY: the caller owns `h`; every page reached is owned by it.
    unsafe {
        if purge_tick(h) {
            purge_check(h);
        }
        note_peak(h, cls);
        if !(*h)
            .notify
            .load(crate::sync::atomic::Ordering::Relaxed)
            .is_null()
        {
            drain_notify(h);
        }
        loop {
            let page = (*h).queues[slot(cls)].first;
            if page.is_null() {
                break;
            }
            if !(*page).dirty {
                // An empty page whose memory was purged while it stayed queued.
                segment::mark_dirty(segment::segment_of_page(page), page);
            }
            if crate::config::strict() {
                let b = crate::strict::page_alloc(h, page);
                if !b.is_null() {
                    return b;
                }
            } else {
                if (*page).free.is_null() {
                    collect(page);
                }
                if (*page).free.is_null() && (*page).built < (*page).capacity {
                    extend(page);
                }
                if !(*page).free.is_null() {
                    return heap_alloc(h, cls);
                }
            }
            page_to_full(h, page);
        }
        let mut page = fresh_page(h, cls);
        if page.is_null() && reclaim(h) > 0 {
            page = fresh_page(h, cls);
        }
        if page.is_null() {
            if crate::config::strict() {
                // Strict mode writes its own canary: it makes its own fallback.
                return ptr::null_mut();
            }
            return large_fallback(cls);
        }
        queue_push_front(&mut (*h).queues[slot(cls)], page);
        if crate::config::strict() {
            return crate::strict::page_alloc(h, page);
        }
        extend(page);
        heap_alloc(h, cls)
    }
}

/// No segment could be mapped (the address space is short: `RLIMIT_AS`): give back what
/// `h` and the caches hold unused (empty pages `h` keeps, cached segments, cached large
/// blocks), so that a mapping can be made in their place. Returns the bytes released.
///
/// # Safety
/// The caller owns `h` and holds no page of it across the call.
#[cold]
#[inline(never)]
unsafe fn reclaim(h: *mut Heap) -> usize {
    // SAFETY: per the contract.
    let own = unsafe { trim_heap(h, os::now_ms()) };
    own + segment::trim_cache() + large::trim()
}

/// No segment can be had for class `cls` (the address space is short: `RLIMIT_AS`): serve
/// the block as a large block of its own, with the class's size and alignment, rather than
/// fail. A block of 8 KiB to 512 KiB costs its own size and two guard pages this way; smaller
/// ones first get the emergency segment (see `emergency`). `free`, `realloc` and
/// `malloc_usable_size` find it in the large-block table as any large block.
#[cold]
#[inline(never)]
pub(crate) fn large_fallback(cls: usize) -> *mut u8 {
    let size = class_size(cls);
    large::alloc(size, crate::size_class::class_align(cls))
}

/// Record the blocks of class `cls` this heap has out, if it is a new high.
#[inline]
unsafe fn note_peak(h: *mut Heap, cls: usize) {
    let i = slot(cls);
    // SAFETY: the caller owns `h`; the counters are its own.
    let (a, f, ro, ri, pk) = unsafe {
        let h = &*h;
        (
            &h.allocs[i],
            &h.frees[i],
            &h.remote_out[i],
            &h.remote_in[i],
            &h.peak[i],
        )
    };
    let r = Ordering::Relaxed;
    let out = a
        .load(r)
        .wrapping_sub(f.load(r).wrapping_sub(ro.load(r)))
        .wrapping_sub(ri.load(r));
    if out < (1 << 62) && out > pk.load(r) {
        pk.store(out, r);
    }
}

/// Build the next blocks of a page's untouched memory into its free list.
unsafe fn extend(page: *mut Page) {
    // SAFETY: the caller owns the page; blocks [built, capacity) are unused page memory.
    unsafe {
        let p = &mut *page;
        let bs = p.block_size as usize;
        let per_extend = EXTEND_BYTES.checked_div(bs).unwrap_or(1).max(1);
        let n = (per_extend as u32).min(p.capacity - p.built) as usize;
        let first = p.start.add(p.built as usize * bs);
        let mut b = first;
        for _ in 1..n {
            let next = b.add(bs);
            (*(b as *mut Block)).next = next.cast();
            b = next;
        }
        (*(b as *mut Block)).next = p.free;
        p.free = first.cast();
        p.built += n as u32;
    }
}

/// Move the blocks other threads freed into the local free list.
///
/// # Safety
/// The calling thread owns the page (or its heap's lock).
pub(crate) unsafe fn collect(page: *mut Page) {
    if crate::config::strict() {
        // SAFETY: forwarded contract.
        return unsafe { crate::strict::collect(page) };
    }
    // SAFETY: the caller owns the page; the swap gives it the whole remote list.
    unsafe {
        let p = &mut *page;
        let head = remote::take_blocks(&p.thread_free);
        if head.is_null() {
            return;
        }
        let seg = &*segment::segment_of_page(page);
        let mut b = head;
        let mut tail = head;
        let mut count = 0u32;
        while !b.is_null() {
            count += 1;
            if count > p.used {
                os::fatal_ptr(
                    "heap corruption: remote free list too long in page at",
                    p.start as usize,
                );
            }
            if os::HARDENED {
                let (w, bit) = seg.bit(b as usize);
                let v = w.load(Ordering::Relaxed);
                if v & bit == 0 {
                    os::fatal_ptr("double free of", b as usize);
                }
                w.store(v & !bit, Ordering::Relaxed);
            }
            tail = b;
            b = (*b).next;
        }
        (*tail).next = p.free;
        p.free = head;
        p.used -= count;
        let h = p.heap.load(Ordering::Relaxed);
        bump(&(*h).remote_in[slot(p.class as usize)], count as u64);
    }
}

/// A page with no free block: move it from its class queue to the full list.
unsafe fn page_to_full(h: *mut Heap, page: *mut Page) {
    // SAFETY: the caller owns `h` and the page, which is in its class queue.
    unsafe {
        let cls = (*page).class as usize;
        queue_remove(&mut (*h).queues[slot(cls)], page);
        queue_push_back(&mut (*h).full, page);
        (*page).in_full = true;
        if !remote::owner_mark_full(&(*page).full_state, &(*page).thread_free) {
            // A remote free raced with us and may not have seen FULL: keep the page queued.
            full_to_queue(h, page);
        }
    }
}

unsafe fn full_to_queue(h: *mut Heap, page: *mut Page) {
    // SAFETY: the caller owns `h` and the page, which is on the full list.
    unsafe {
        queue_remove(&mut (*h).full, page);
        (*page).in_full = false;
        queue_push_back(&mut (*h).queues[slot((*page).class as usize)], page);
    }
}

/// Move the pages that other threads notified back from the full list to their queues.
unsafe fn drain_notify(h: *mut Heap) {
    // SAFETY: the caller owns `h`; the swap gives it the whole stack, whose pages it owns.
    unsafe {
        let mut p = remote::take_notify(&(*h).notify);
        while !p.is_null() {
            let next = (*p).notify_next.load(core::sync::atomic::Ordering::Relaxed);
            remote::owner_drained(&(*p).full_state);
            if (*p).in_full {
                full_to_queue(h, p);
            }
            p = next;
        }
    }
}

unsafe fn fresh_page(h: *mut Heap, cls: usize) -> *mut Page {
    let bs = class_size(cls);
    let kind = Kind::of_block_size(bs);
    // SAFETY: the caller owns `h`; its segments are its own.
    unsafe {
        let mut seg = (*h).segs[kind as usize];
        if seg.is_null() && give_back_kept_page(h, kind, cls) {
            seg = (*h).segs[kind as usize];
        }
        if seg.is_null() {
            seg = segment::alloc(h, kind);
            if seg.is_null() {
                return ptr::null_mut();
            }
            seg_list_push(h, seg);
        }
        let page = (*seg).take_page();
        debug_assert!(!page.is_null());
        if !(*seg).has_free_pages() {
            seg_list_remove(h, seg);
        }
        segment::init_page(seg, page, cls, bs);
        page
    }
}

/// No segment of `h` has an unused page of `kind`: before a segment is taken for class `cls`,
/// give back to its segment an empty page that another class of the kind keeps (see
/// `retire`), so that its memory, still resident, serves `cls` instead of fresh memory being
/// touched. Without this a program whose blocks move from class to class, as a growing
/// vector's do, kept a resident empty page (for blocks above 64 KiB, a segment of its own) for
/// every class it passed through until the purge delay ran out, and its peak resident set was
/// the sum of them. Returns whether a page went back; a big page's segment goes to the segment
/// cache, where [`segment::alloc`] finds it first.
///
/// Not in strict mode: it carves fresh blocks in shuffled batches of at least 16 and writes a
/// link into each, so a page carved again for a class of another size has OS pages touched at
/// new block starts all over its length (the growing block of `tests/c/rss_footprint.c` kept
/// 23 MiB resident that way instead of 5 MiB).
///
/// # Safety
/// `h` is owned by the calling thread (or locked by it).
#[cold]
unsafe fn give_back_kept_page(h: *mut Heap, kind: Kind, cls: usize) -> bool {
    if crate::config::strict() {
        return false;
    }
    // SAFETY: the caller owns `h` and every page in its queues.
    unsafe {
        for c in 0..NUM_CLASSES {
            if c == cls || Kind::of_block_size(class_size(c)) != kind {
                continue;
            }
            let q = &mut (*h).queues[slot(c)];
            let page = kept_empty_page(q);
            if !page.is_null() {
                queue_remove(q, page);
                give_back_quiet(h, page, os::now_ms());
                return true;
            }
        }
        false
    }
}

// ---------------------------------------------------------------------------------------------
// Free

/// Free the block at `p`, which lies in segment `seg`. Aborts on a double or invalid free, or
/// when `size` (the caller's claim of what it allocated; 0 for none) exceeds the block.
///
/// # Safety
/// `seg` is the segment of ours that contains `p` (from `segment::segment_of`).
#[inline(always)]
pub unsafe fn free(seg: *mut Segment, p: *mut u8, size: usize) {
    // SAFETY: `seg` is a mapped segment of ours; its bitmap decides whether `p` is live.
    unsafe {
        let s = &*seg;
        let (w, bit) = s.bit(p as usize);
        let v = w.load(Ordering::Relaxed);
        if os::HARDENED && (v & bit == 0 || (p as usize) & 15 != 0) {
            bad_free(s, p as usize);
        }
        let page = s.pages.as_ptr().add(s.page_index(p as usize)) as *mut Page;
        if size > (*page).block_size as usize {
            os::fatal_ptr(
                "sized free with a size larger than the block at",
                p as usize,
            );
        }
        let b = p as *mut Block;
        let h = tls_heap();
        if (*page).heap.load(Ordering::Relaxed) == h {
            if os::HARDENED {
                w.store(v & !bit, Ordering::Relaxed);
            }
            (*b).next = (*page).free;
            (*page).free = b;
            (*page).used -= 1;
            bump(&(*h).frees[slot((*page).class as usize)], 1);
            if (*page).used == 0 || (*page).in_full {
                free_slow(h, page);
            }
        } else {
            free_remote(h, page, b, 0);
        }
    }
}

/// Frees by threads without a heap (they never allocated, or their exit hook ran), per class.
pub static HEAPLESS_FREES: [AtomicU64; CLASS_SLOTS] = [const { AtomicU64::new(0) }; CLASS_SLOTS];

#[cold]
pub(crate) fn bad_free(s: &Segment, p: usize) -> ! {
    // A large block's address range, once unmapped, can be taken by a new segment: its ring
    // of recently unmapped blocks still knows the pointer.
    if s.held_block(p) || large::was_freed(p as *const u8) {
        os::fatal_ptr("double free of", p);
    }
    os::fatal_ptr("invalid free of", p);
}

/// Whether `p` is a live block of segment `seg`, and its usable size.
///
/// # Safety
/// As for [`free`].
pub unsafe fn usable_size(seg: *mut Segment, p: *mut u8) -> Option<usize> {
    // SAFETY: `seg` is a mapped segment of ours.
    let s = unsafe { &*seg };
    let (w, bit) = s.bit(p as usize);
    if os::HARDENED && (w.load(Ordering::Relaxed) & bit == 0 || (p as usize) & 15 != 0) {
        return None;
    }
    Some(s.pages[s.page_index(p as usize)].block_size as usize)
}

/// A local free emptied `page` or made room in a full one: requeue or retire it.
///
/// The common case, in a loop that allocates and frees one block, is the page a class keeps
/// (the only one in its queue) becoming empty again: that is checked here, inline, so that it
/// costs a few loads instead of a call that saves and restores registers.
///
/// # Safety
/// The calling thread owns `h` and the page.
#[inline(always)]
pub(crate) unsafe fn free_slow(h: *mut Heap, page: *mut Page) {
    // SAFETY: the caller owns `h` and the page.
    unsafe {
        if !(*page).in_full && (*page).used == 0 {
            let q = &(*h).queues[slot((*page).class as usize)];
            if q.first == page && q.last == page {
                if purge_tick(h) {
                    purge_check(h);
                }
                return;
            }
        }
        free_page_event(h, page);
    }
}

/// The rest of [`free_slow`].
///
/// # Safety
/// As for [`free_slow`].
#[cold]
#[inline(never)]
unsafe fn free_page_event(h: *mut Heap, page: *mut Page) {
    // SAFETY: the caller owns `h` and the page.
    unsafe {
        if (*page).in_full {
            // A page already NOTIFIED stays on the notify stack; draining it copes with a page
            // that is back in its queue.
            remote::owner_unmark_full(&(*page).full_state);
            full_to_queue(h, page);
        }
        if (*page).used == 0 {
            retire(h, page);
        }
        // Last: the purge moves and gives back queued pages, `page` among them.
        if purge_tick(h) {
            purge_check(h);
        }
    }
}

/// Whether a remote free has put `page` on its heap's notify stack (it stays there until the
/// owner drains the stack, so the owner must not give it back meanwhile).
///
/// # Safety
/// `page` is a page descriptor of ours (descriptors stay mapped for ever).
unsafe fn on_notify_stack(page: *mut Page) -> bool {
    // SAFETY: per the contract.
    unsafe {
        (*page)
            .full_state
            .load(crate::sync::atomic::Ordering::Relaxed)
            == NOTIFIED
    }
}

/// The page a class keeps (see [`retire`]) when it is empty: the only page of queue `q`, with
/// no block in use, and neither on the full list nor on the notify stack; else null.
///
/// # Safety
/// The calling thread owns the heap of `q` (or holds it locked).
unsafe fn kept_empty_page(q: &PageQueue) -> *mut Page {
    let page = q.first;
    // SAFETY: per the contract, the queue's pages are the caller's.
    unsafe {
        if !page.is_null()
            && q.last == page
            && (*page).used == 0
            && !(*page).in_full
            && !on_notify_stack(page)
        {
            page
        } else {
            ptr::null_mut()
        }
    }
}

/// Give an empty page back to its segment, unless it is the only page of its class (a loop
/// that allocates and frees one block must not map and unmap a page each time) or is on the
/// notify stack. A kept page's memory is purged when a purge finds it empty twice, the purge
/// delay apart (see `purge`): without that, every heap kept up to a page per class resident
/// for ever (a 512 KiB page for each class above 8 KiB), which `tests/soak.rs` saw as RSS
/// growing with the number of heaps and classes used. Keeping a page schedules no purge by
/// itself, so a loop that allocates and frees one block pays nothing for it: the purges that
/// other frees schedule look at the kept pages too.
unsafe fn retire(h: *mut Heap, page: *mut Page) {
    // SAFETY: the caller owns `h` and the page, which is in its class queue and empty.
    unsafe {
        let q = &mut (*h).queues[slot((*page).class as usize)];
        if (q.first == page && q.last == page) || on_notify_stack(page) {
            return;
        }
        queue_remove(q, page);
        give_back(h, page);
    }
}

/// Return an empty page, already off every list, to its segment, and the segment to the
/// segment cache when it has no page left in use; schedule the purge of its memory.
unsafe fn give_back(h: *mut Heap, page: *mut Page) {
    let now = os::now_ms();
    // SAFETY: per the contract.
    unsafe {
        give_back_quiet(h, page, now);
        schedule_purge(h, now);
    }
}

/// [`give_back`] without scheduling the purge (for `purge` itself, which must not re-enter).
///
/// # Safety
/// As for [`give_back`].
unsafe fn give_back_quiet(h: *mut Heap, page: *mut Page, now: u64) {
    // SAFETY: the caller owns `h` and the page, which is empty and on no list.
    unsafe {
        (*page).freed_at = now;
        let seg = segment::segment_of_page(page);
        (*seg).return_page(page);
        if (*seg).used_pages == 0 {
            if (*seg).in_heap_list {
                seg_list_remove(h, seg);
            }
            segment::free(seg, now);
        } else if !(*seg).in_heap_list {
            seg_list_push(h, seg);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Giving memory back: free pages of a heap's segments, empty segments in the segment cache and
// cached large blocks are purged once they have been free for the purge delay. There is no
// background thread: the owner checks the deadline on its slow paths (`alloc_slow`,
// `free_slow`), which a program that is still calling the allocator reaches soon enough, and
// the fast path pays nothing. `MADV_DONTNEED` rather than `MADV_FREE`: the pages leave the
// resident set at once, which is what users measure (MADV_FREE pages stay counted in RSS
// until the kernel is short of memory), and a purged page reads as zero when reused.

/// Note that something freed at `now` must be purged after the delay (owner only).
///
/// # Safety
/// `h` is owned by the calling thread (or locked by it).
unsafe fn schedule_purge(h: *mut Heap, now: u64) {
    let due = now.saturating_add(crate::config::purge_delay_ms() as u64);
    // SAFETY: per the contract.
    unsafe {
        if (*h).purge_due == 0 || due < (*h).purge_due {
            (*h).purge_due = due;
        }
        if due <= now {
            purge(h, now, false);
        }
    }
}

/// Note that this thread freed a large block at `now` (its cache decays like pages).
pub fn large_freed(now: u64) {
    let h = tls_heap();
    if h as usize > DONE as usize {
        // SAFETY: a pointer above DONE in our TLS is this thread's own heap.
        unsafe { schedule_purge(h, now) };
    }
}

/// Whether this slow-path call should check the purge deadline: something is waiting to be
/// purged, and the last check was a while ago. The clock (`clock_gettime`, some 30
/// instructions) costs more than the rest of a slow path that only retires an empty page, as
/// in a malloc/free loop, so on x86-64 the time-stamp counter (one instruction) rations it to
/// one read per [`CHECK_CYCLES`] cycles, and elsewhere to every [`PURGE_CHECK_EVERY`]th call.
///
/// # Safety
/// `h` is owned by the calling thread.
#[inline(always)]
unsafe fn purge_tick(h: *mut Heap) -> bool {
    // SAFETY: per the contract.
    unsafe {
        if (*h).purge_due == 0 {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: rdtsc is available on every x86-64 processor and has no preconditions.
            let t = core::arch::x86_64::_rdtsc();
            if t.wrapping_sub((*h).last_check) < CHECK_CYCLES {
                return false;
            }
            (*h).last_check = t;
            true
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            (*h).last_check = (*h).last_check.wrapping_add(1);
            (*h).last_check % PURGE_CHECK_EVERY == 0
        }
    }
}

/// See [`purge_tick`]: about 0.3 ms at 3 GHz, far below any purge delay worth setting.
#[cfg(target_arch = "x86_64")]
const CHECK_CYCLES: u64 = 1 << 20;
/// See [`purge_tick`].
#[cfg(not(target_arch = "x86_64"))]
const PURGE_CHECK_EVERY: u64 = 8;

/// Purge this heap if its deadline has passed.
///
/// # Safety
/// `h` is owned by the calling thread.
#[cold]
#[inline(never)]
unsafe fn purge_check(h: *mut Heap) {
    let now = os::now_ms();
    // SAFETY: the caller owns `h`.
    unsafe {
        if (*h).purge_due != 0 && now >= (*h).purge_due {
            purge(h, now, false);
        }
    }
}

/// At thread exit, while the thread still owns its heap: purge every free page of its
/// segments and the empty page each class keeps, so that the memory an exited thread freed
/// does not stay resident until another thread adopts the heap (nobody else may touch the
/// heap's pages: its owner is gone, and purging on its behalf from another thread raced with
/// adoption and remote frees). The pages stay mapped for the next owner.
///
/// # Safety
/// `h` is owned by the calling thread.
unsafe fn exit_purge(h: *mut Heap) {
    let now = os::now_ms();
    // SAFETY: per the contract.
    unsafe {
        purge(h, now, false);
        // One syscall for all of it where the kernel allows (see `os::PurgeBatch`); flushed
        // before the heap is let go of.
        let mut batch = os::PurgeBatch::new();
        for c in 0..NUM_CLASSES {
            let page = kept_empty_page(&(*h).queues[slot(c)]);
            if !page.is_null() {
                segment::purge_empty_page(segment::segment_of_page(page), page, &mut batch);
                (*page).freed_at = 0;
            }
        }
        for k in 0..NUM_KINDS {
            let mut seg = *(*h).segs.get(k).unwrap_or(&ptr::null_mut());
            while !seg.is_null() {
                (*seg).purge_pages(u64::MAX, &mut batch);
                seg = (*seg).next;
            }
        }
        batch.flush();
    }
}

/// Purge what has been free for the delay (everything when `all`): the heap's unused pages,
/// the segment cache and the large-block cache. Returns the bytes given back.
///
/// # Safety
/// `h` is owned by the calling thread (or locked by it, or abandoned and held under the pool
/// lock).
unsafe fn purge(h: *mut Heap, now: u64, all: bool) -> usize {
    let delay = crate::config::purge_delay_ms() as u64;
    let cutoff = if all {
        u64::MAX
    } else {
        now.saturating_sub(delay)
    };
    let mut next = u64::MAX;
    let mut bytes = 0;
    // Every range purged below goes through one batch (one syscall where the kernel allows,
    // see `os::PurgeBatch`), flushed before a page or segment can leave the heap's hands.
    let mut batch = os::PurgeBatch::new();
    // SAFETY: the caller owns `h`; the segments on its lists are its own.
    unsafe {
        for k in 0..NUM_KINDS {
            let mut seg = *(*h).segs.get(k).unwrap_or(&ptr::null_mut());
            while !seg.is_null() {
                let (n, b) = (*seg).purge_pages(cutoff, &mut batch);
                next = next.min(n);
                bytes += b;
                seg = (*seg).next;
            }
        }
        // Pages still queued: those that remote frees emptied (their blocks wait on the
        // remote-free list until the owner looks, and a page behind the first of its queue
        // may not be looked at for a long time) go back to their segment, whose free pages
        // are purged below after the delay; the one page a class keeps (see `retire`) has its
        // memory purged once it has been seen empty for the delay.
        drain_notify(h);
        for c in 0..NUM_CLASSES {
            let mut page = (*h).queues[slot(c)].first;
            while !page.is_null() {
                let after = (*page).next;
                collect(page);
                if (*page).used == 0 && !on_notify_stack(page) {
                    let q = &mut (*h).queues[slot(c)];
                    if q.first != page || q.last != page {
                        queue_remove(q, page);
                        // The page's segment may go to the segment cache, where any thread
                        // can take it: nothing of it may wait in the batch.
                        batch.flush();
                        give_back_quiet(h, page, now);
                    } else if (*page).dirty && (*page).built != 0 {
                        if (*page).freed_at == 0 {
                            (*page).freed_at = now; // first seen empty
                            next = next.min(now);
                        } else if (*page).freed_at <= cutoff {
                            bytes += segment::purge_empty_page(
                                segment::segment_of_page(page),
                                page,
                                &mut batch,
                            );
                            (*page).freed_at = 0;
                        } else {
                            next = next.min((*page).freed_at);
                        }
                    }
                }
                page = after;
            }
        }
        batch.flush();
        next = next.min(segment::cache_decay(cutoff, &mut bytes));
        next = next.min(crate::large::decay(cutoff, &mut bytes));
        (*h).purge_due = if next == u64::MAX {
            0
        } else {
            next.saturating_add(delay).max(1)
        };
    }
    bytes
}

/// `malloc_trim`: give back everything this thread can reach safely: its own heap (empty pages
/// it keeps for reuse included) and every abandoned heap, then the segment and large-block
/// caches. Live threads' heaps are their owners' alone; they purge on their own schedule.
/// Returns the bytes purged or unmapped.
pub fn trim() -> usize {
    let now = os::now_ms();
    let mut bytes = 0;
    let h = tls_heap();
    if h as usize > DONE as usize {
        // SAFETY: this thread's own heap.
        bytes += unsafe { trim_heap(h, now) };
    }
    {
        let mut pool = POOL.lock();
        reclaim_dead(&mut pool);
        let mut a = pool.abandoned;
        while !a.is_null() {
            // SAFETY: an abandoned heap has no owner; holding the pool lock keeps anyone from
            // adopting it meanwhile. Remote frees into its pages are atomic pushes that
            // `trim_heap` copes with like the owner would.
            unsafe {
                bytes += trim_heap(a, now);
                a = (*a).next_abandoned;
            }
        }
    }
    {
        let b = BACKUP.lock();
        if *b != 0 {
            // SAFETY: the lock gives this thread exclusive use of the backup heap.
            bytes += unsafe { trim_heap(*b as *mut Heap, now) };
        }
    }
    bytes + segment::trim_cache() + crate::large::trim()
}

/// Collect remote frees, give every empty page back, purge all free pages of `h`.
///
/// # Safety
/// As for [`purge`].
unsafe fn trim_heap(h: *mut Heap, now: u64) -> usize {
    // SAFETY: per the contract, `h` and its pages are ours to manage.
    unsafe {
        crate::strict::flush_quarantine(h);
        drain_notify(h);
        for c in 0..NUM_CLASSES {
            let mut page = (*h).queues[slot(c)].first;
            while !page.is_null() {
                let next = (*page).next;
                collect(page);
                if (*page).used == 0 && !on_notify_stack(page) {
                    queue_remove(&mut (*h).queues[slot(c)], page);
                    // Quiet: with a zero purge delay `give_back` would run `purge`, which
                    // walks and changes these queues under our feet; it runs below anyway.
                    give_back_quiet(h, page, now);
                }
                page = next;
            }
        }
        purge(h, now, true)
    }
}

/// Hand block `b` of `page` back to the page's owner (one CAS on its remote-free list), its
/// link stored XORed with `mask` (see `remote::push_block`; strict mode encodes it), and count
/// the free in this thread's heap `h` (or, without one, in [`HEAPLESS_FREES`]).
///
/// # Safety
/// `b` is a live block of `page` (its bitmap bit is set) that the caller gives up; `h` is this
/// thread's heap or a sentinel at or below `DONE`, and does not own the page.
#[inline(never)]
pub(crate) unsafe fn free_remote(h: *mut Heap, page: *mut Page, b: *mut Block, mask: usize) {
    // SAFETY: per the contract; the page and its heap stay mapped for ever.
    unsafe {
        let cls = slot((*page).class as usize);
        if h as usize > DONE as usize {
            bump(&(*h).frees[cls], 1);
            bump(&(*h).remote_out[cls], 1);
        } else {
            HEAPLESS_FREES[cls].fetch_add(1, Ordering::Relaxed);
        }
        remote::push_block(&(*page).thread_free, b, mask);
        if remote::remote_should_notify(&(*page).full_state) {
            let owner = (*page).heap.load(Ordering::Acquire);
            remote::push_notify(&(*owner).notify, page, &(*page).notify_next);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Intrusive lists

unsafe fn queue_push_front(q: &mut PageQueue, page: *mut Page) {
    // SAFETY: the caller owns the queue and the page, which is on no list.
    unsafe {
        (*page).prev = ptr::null_mut();
        (*page).next = q.first;
        if q.first.is_null() {
            q.last = page;
        } else {
            (*q.first).prev = page;
        }
        q.first = page;
    }
}

unsafe fn queue_push_back(q: &mut PageQueue, page: *mut Page) {
    // SAFETY: the caller owns the queue and the page, which is on no list.
    unsafe {
        (*page).next = ptr::null_mut();
        (*page).prev = q.last;
        if q.last.is_null() {
            q.first = page;
        } else {
            (*q.last).next = page;
        }
        q.last = page;
    }
}

unsafe fn queue_remove(q: &mut PageQueue, page: *mut Page) {
    // SAFETY: the caller owns the queue, and the page is on it.
    unsafe {
        let (prev, next) = ((*page).prev, (*page).next);
        if prev.is_null() {
            q.first = next;
        } else {
            (*prev).next = next;
        }
        if next.is_null() {
            q.last = prev;
        } else {
            (*next).prev = prev;
        }
        (*page).next = ptr::null_mut();
        (*page).prev = ptr::null_mut();
    }
}

unsafe fn seg_list_push(h: *mut Heap, seg: *mut Segment) {
    // SAFETY: the caller owns `h` and `seg`, which is on no list.
    unsafe {
        let head = &mut (*h).segs[(*seg).kind as usize];
        (*seg).prev = ptr::null_mut();
        (*seg).next = *head;
        if !head.is_null() {
            (**head).prev = seg;
        }
        *head = seg;
        (*seg).in_heap_list = true;
    }
}

unsafe fn seg_list_remove(h: *mut Heap, seg: *mut Segment) {
    // SAFETY: the caller owns `h` and `seg`, which is on `h`'s list for its kind.
    unsafe {
        let head = &mut (*h).segs[(*seg).kind as usize];
        let (prev, next) = ((*seg).prev, (*seg).next);
        if prev.is_null() {
            *head = next;
        } else {
            (*prev).next = next;
        }
        if !next.is_null() {
            (*next).prev = prev;
        }
        (*seg).next = ptr::null_mut();
        (*seg).prev = ptr::null_mut();
        (*seg).in_heap_list = false;
    }
}

#[cfg(test)]
mod tests {
    //! The free-list carving of a page over plain memory; run under Miri too.
    use super::*;
    use std::collections::HashSet;

    /// A page descriptor over `bytes` bytes of fresh memory, for blocks of `bs` bytes.
    fn page_over(mem: *mut u8, bytes: usize, bs: usize) -> *mut Page {
        // SAFETY: every field of `Page` is valid as zero (null pointers, zero counts, false,
        // NOT_FULL).
        let mut p: Box<Page> = Box::new(unsafe { core::mem::zeroed() });
        p.start = mem;
        p.block_size = bs as u32;
        p.capacity = (bytes / bs) as u32;
        p.in_use = true;
        Box::into_raw(p)
    }

    #[test]
    fn extend_carves_every_block_once() {
        for bs in [16usize, 48, 1024, 5120, 16384] {
            let cap = if cfg!(miri) { 40 } else { 700 };
            let bytes = bs * cap + bs / 2; // a tail too short for a block
            let mut mem = vec![0u128; bytes.div_ceil(16)];
            let start = mem.as_mut_ptr() as *mut u8;
            let page = page_over(start, bytes, bs);
            let mut got = Vec::new();
            // SAFETY: the page and its memory are this test's alone; every block popped lies
            // in `mem`, which outlives the page.
            unsafe {
                loop {
                    if (*page).free.is_null() {
                        if (*page).built == (*page).capacity {
                            break;
                        }
                        extend(page);
                        assert!(!(*page).free.is_null(), "extend built nothing");
                    }
                    let b = (*page).free;
                    (*page).free = (*b).next;
                    got.push(b);
                }
                assert_eq!(got.len(), cap, "block size {bs}");
                let distinct: HashSet<*mut Block> = got.iter().copied().collect();
                assert_eq!(distinct.len(), cap);
                for &b in &got {
                    let off = b.addr() - start.addr();
                    assert_eq!(
                        off % bs,
                        0,
                        "block at offset {off} not on a {bs}-byte boundary"
                    );
                    assert!(
                        off + bs <= bytes,
                        "block at offset {off} runs past the page"
                    );
                }
                // Free them all back in another order, then take them again: same set.
                for &b in got.iter().rev().step_by(2).chain(got.iter().step_by(2)) {
                    (*b).next = (*page).free;
                    (*page).free = b;
                }
                let mut again = HashSet::new();
                while !(*page).free.is_null() {
                    let b = (*page).free;
                    (*page).free = (*b).next;
                    assert!(again.insert(b), "block {b:p} twice on the free list");
                }
                assert!(again.is_subset(&distinct) && again.len() == cap.div_ceil(2) + cap / 2);
                drop(Box::from_raw(page));
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "raw syscalls")]
    fn owner_stamps_pack_and_unpack() {
        let s = owner_stamp();
        let (pid, tid) = os::process_and_thread_id();
        assert_ne!(s, 0);
        assert_eq!(s & ID_MASK, tid as u64);
        assert_eq!((s >> ID_BITS) & ID_MASK, pid as u64);
        assert_eq!(s >> EPOCH_SHIFT, EPOCH.load(Ordering::Relaxed));
    }

    #[test]
    fn class_slots_cover_every_class() {
        for c in 0..NUM_CLASSES {
            assert_eq!(slot(c), c);
        }
        assert!(CLASS_SLOTS >= NUM_CLASSES && CLASS_SLOTS.is_power_of_two());
    }
}
