//! Thread heaps: the fast path, the per-class page queues, remote frees and thread exit.
//!
//! # Ownership
//! Every thread that allocates gets a [`Heap`]; a heap owns segments and their pages. Only the
//! owner touches a page's local free list and its counters, and it sets and clears bitmap bits
//! with plain (non-RMW) operations, so `malloc` and a `free` on the owning thread take no lock
//! and no atomic read-modify-write.
//!
//! # Remote frees
//! A thread that frees another heap's block clears its live bit with an atomic RMW (a double
//! free is caught there, at once) and batches it with the other blocks of the same page it
//! frees next; the batch goes on the page's atomic `thread_free` list with one CAS, which also
//! adds to the list's count (see `free::free_remote`). The owner takes the list and its count
//! with one swap the next time it needs that page, without walking it. A page that had no
//! free block left sits on the heap's *full* list, where the owner never looks; the first
//! remote free into it therefore also pushes the page on the heap's *notify* stack
//! (`full_state` FULL -> NOTIFIED), which the owner drains at the start of its slow path.
//! Marking a page full and a remote push race like Dekker's algorithm: the owner stores FULL
//! then re-reads `thread_free`, the remote pushes then reads `full_state`, all `SeqCst`, so at
//! least one of them sees the other and no page is stranded on the full list.
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
//!
//! # Files
//! This file holds the heap type, the allocation paths and the page queues; `pool.rs` the heap
//! pool (creation, adoption, thread exit, the fork child's repair), `free.rs` the free paths,
//! `give_back.rs` the purge schedule, `malloc_trim` and the reclaim of a failed mapping.

use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::remote::{self, Block, NOTIFIED};
use crate::segment::{self, Kind, NUM_KINDS, Page, Segment};
use crate::size_class::{MIN_ALIGN, NUM_CLASSES, ZERO_CLASS, class_size};
use crate::{large, os};

mod free;
mod give_back;
mod pool;

pub use free::*;
use give_back::{exit_purge, purge_check, purge_tick, reclaim, schedule_purge};
pub use give_back::{large_freed, trim};
use pool::*;
pub use pool::{for_each_heap, heap_counts, thread_exit};

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
    /// The owning thread's sampling countdown (see `prof`; owner only).
    pub prof: crate::prof::ThreadState,
    /// Remote frees not handed over yet (see [`free::free_remote`]): blocks of one page of
    /// another heap, linked through their first words, `pend_count` of them (owner only).
    pend_page: *mut Page,
    pend_head: *mut Block,
    pend_tail: *mut Block,
    pend_count: u32,
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
        flush_remote(h);
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
        if !Kind::of_block_size(class_size(cls)).has_segments() {
            // Hardened builds lay out no segment for the big kind (see `segment`): its blocks
            // are large blocks of their own, with nothing to reclaim first.
            return if crate::config::strict() {
                ptr::null_mut()
            } else {
                large_fallback(cls)
            };
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

/// No segment can be had for class `cls` (the address space is short: `RLIMIT_AS`; or, in
/// hardened builds, `cls` is of the big kind, which has no segments: see
/// `segment::Kind::has_segments`): serve the block as a large block of its own, with the
/// class's size and alignment, rather than fail. A block of 8 KiB to 512 KiB costs its own
/// size and two guard pages this way; smaller ones first get the emergency segment (see
/// `emergency`). `free`, `realloc` and `malloc_usable_size` find it in the large-block table
/// as any large block.
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
/// Their freers have cleared their live bits (see `free::free_remote`) and the list's word
/// says how many there are, so when the local list is empty (the allocation slow path) this
/// takes the list whole without touching a block: the blocks' cache lines, written by the
/// freeing threads, are read one at a time as they are handed out, instead of all at once in
/// a walk that waits on each in turn (on `benches/compare`'s larson with two threads the walk
/// was a third of the run). A local list that is not empty gets the remote list at its front,
/// after a walk to the remote list's tail, which checks its length.
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
        let (head, count) = remote::take_blocks(&p.thread_free);
        if head.is_null() {
            return;
        }
        if count > p.used {
            remote_list_broken(p);
        }
        if !p.free.is_null() {
            let mut tail = head;
            for _ in 1..count {
                tail = (*tail).next;
                if tail.is_null() {
                    remote_list_broken(p);
                }
            }
            if !(*tail).next.is_null() {
                remote_list_broken(p);
            }
            (*tail).next = p.free;
        }
        p.free = head;
        p.used -= count;
        let h = p.heap.load(Ordering::Relaxed).cast::<Heap>();
        bump(&(*h).remote_in[slot(p.class as usize)], count as u64);
    }
}

#[cold]
fn remote_list_broken(p: &Page) -> ! {
    os::fatal_ptr(
        "heap corruption: remote free list broken in page at",
        p.start as usize,
    )
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
            seg = segment::alloc(h.cast(), kind, crate::config::strict());
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
