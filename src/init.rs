//! Lazy, allocation-free, thread-safe initialisation, the thread-exit key and the `fork`
//! handlers.
//!
//! Nothing needs initialising before the first allocation can be served: the segment map,
//! the locks and the caches are static and zero-initialised, and the page size is read on
//! first use. What `ensure` adds once, on the first allocation of the first thread, is the
//! `pthread_key_create` destructor that abandons a heap when its thread exits, and the
//! `pthread_atfork` handlers. Either glibc call could allocate (and so re-enter `malloc`) in
//! some version; a re-entrant call from the initialising thread therefore proceeds without
//! waiting, while other threads wait for the initialisation to finish.

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::{config, heap, large, os, segment};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const READY: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static INIT_THREAD: AtomicUsize = AtomicUsize::new(0);
/// The thread-exit key, plus one (0: not created).
static KEY: AtomicUsize = AtomicUsize::new(0);

/// Whether the first allocation has begun (settings that must not change under live blocks,
/// such as strict mode, are fixed from then on).
pub fn started() -> bool {
    STATE.load(Ordering::Acquire) != UNINIT
}

#[inline]
pub fn ensure() {
    if STATE.load(Ordering::Acquire) != READY {
        ensure_slow();
    }
}

#[cold]
fn ensure_slow() {
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() } as usize;
    match STATE.compare_exchange(UNINIT, RUNNING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            INIT_THREAD.store(me, Ordering::Relaxed);
            config::load();
            config::fix_strict();
            os::page_size();
            heap::init_fork_token();
            let mut key: libc::pthread_key_t = 0;
            // SAFETY: `key` is a valid out-pointer; the destructor is an `extern "C"` fn that
            // never unwinds.
            if unsafe { libc::pthread_key_create(&mut key, Some(heap::thread_exit)) } == 0 {
                KEY.store(key as usize + 1, Ordering::Release);
            }
            // SAFETY: the handlers are `extern "C"` functions that never unwind.
            unsafe {
                libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
            }
            STATE.store(READY, Ordering::Release);
        }
        Err(_) => {
            if INIT_THREAD.load(Ordering::Relaxed) == me {
                return; // re-entered from inside our own initialisation
            }
            while STATE.load(Ordering::Acquire) != READY {
                core::hint::spin_loop();
            }
        }
    }
}

/// Arrange for `heap::thread_exit(h)` to run when the calling thread exits.
pub fn register_thread(h: *mut libc::c_void) {
    let key = KEY.load(Ordering::Acquire);
    if key != 0 {
        // SAFETY: the key is valid; glibc may allocate here for high keys, which re-enters
        // malloc with this thread's heap already installed.
        unsafe { libc::pthread_setspecific((key - 1) as libc::pthread_key_t, h) };
    }
}

// ---------------------------------------------------------------------------------------------
// fork

/// Whether `fork_prepare` took the locks (it does not in a single-threaded process).
static FORK_LOCKED: AtomicU8 = AtomicU8::new(0);

#[cfg(target_env = "gnu")]
fn single_threaded() -> bool {
    unsafe extern "C" {
        /// glibc >= 2.32: non-zero while the process has never created a thread.
        static __libc_single_threaded: libc::c_char;
    }
    // SAFETY: a plain byte that glibc maintains; reading it is what it is for.
    unsafe { core::ptr::read_volatile(&raw const __libc_single_threaded) != 0 }
}

#[cfg(not(target_env = "gnu"))]
fn single_threaded() -> bool {
    false
}

/// Before `fork`: take every allocator lock so that the child inherits none held by a thread
/// that does not exist there. In a single-threaded process no lock can be held by another
/// thread, and `fork` may even come from a signal handler that interrupted `malloc` (which
/// holds a lock): take none, as glibc does.
extern "C" fn fork_prepare() {
    if single_threaded() {
        FORK_LOCKED.store(0, Ordering::Relaxed);
        return;
    }
    heap::lock_for_fork();
    segment::lock_for_fork();
    large::lock_for_fork();
    FORK_LOCKED.store(1, Ordering::Relaxed);
}

fn fork_release() {
    if FORK_LOCKED.swap(0, Ordering::Relaxed) == 1 {
        // SAFETY: fork_prepare took these locks in this thread (the child's only thread is the
        // copy of it).
        unsafe {
            large::unlock_after_fork();
            segment::unlock_after_fork();
            heap::unlock_after_fork();
        }
    }
}

extern "C" fn fork_parent() {
    fork_release();
}

extern "C" fn fork_child() {
    heap::after_fork_child();
    fork_release();
}
