//! The heap pool, a part of `heap`: heaps live in chunks (a static one, then mapped ones) and
//! are never unmapped (remote frees may reach them at any time), only abandoned and adopted.

use super::*;

pub(super) struct Pool {
    all: *mut Heap,
    pub(super) abandoned: *mut Heap,
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
pub(super) struct FirstChunk(core::cell::UnsafeCell<[u8; HEAP_CHUNK]>);

// SAFETY: the chunk is handed out once, under the pool lock, and used as mapped chunks are.
unsafe impl Sync for FirstChunk {}

pub(super) static FIRST_CHUNK: FirstChunk =
    FirstChunk(core::cell::UnsafeCell::new([0; HEAP_CHUNK]));
const _: () = assert!(core::mem::align_of::<Heap>() <= 64);

/// The live-heap count below which `pool_acquire` does not look for heaps of ended threads.
pub(super) const SCAN_MIN: usize = 32;

// SAFETY: the pool's pointers refer to mapped heap memory that lives forever; the lock
// serialises access.
unsafe impl Send for Pool {}

pub(super) static POOL: SpinLock<Pool> = SpinLock::new(Pool {
    all: ptr::null_mut(),
    abandoned: ptr::null_mut(),
    chunk: 0,
    chunk_end: 0,
    live: 0,
    abandoned_count: 0,
    scan_at: 0,
});

/// The heap used by threads that allocate after their exit hook ran.
pub(super) static BACKUP: SpinLock<usize> = SpinLock::new(0);

pub(super) const HEAP_CHUNK: usize = 256 * 1024;

/// A heap for a new owner, stamped `owner` (0: not reclaimable by scanning).
pub(super) fn pool_acquire(owner: u64) -> *mut Heap {
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
pub(super) fn reclaim_dead(pool: &mut Pool) -> usize {
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
    unsafe {
        flush_remote(h);
        exit_purge(h);
    }
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
pub(super) unsafe fn repair_after_fork() {
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
