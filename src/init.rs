//! Lazy, allocation-free, thread-safe initialisation, the thread-exit key and the `fork`
//! child handler.
//!
//! Nothing needs initialising before the first allocation can be served: the segment map,
//! the locks and the caches are static and zero-initialised, and the page size is read on
//! first use. What `ensure` adds once, on the first allocation of the first thread, is the
//! `pthread_key_create` destructor that abandons a heap when its thread exits, and the
//! `pthread_atfork` child handler. Either glibc call could allocate (and so re-enter `malloc`) in
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
            // SAFETY: the handler is an `extern "C"` function that never unwinds.
            unsafe {
                libc::pthread_atfork(None, None, Some(fork_child));
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
//
// No allocator lock is held across `fork()`: there is no prepare handler. An interposed
// allocator that takes its locks in a prepare handler deadlocks against stdio, because glibc
// runs the prepare handlers *before* it takes its own stdio locks inside `fork()`: the forking
// thread holds the allocator's locks and waits for libc's list-of-files lock; a thread in
// `fflush(NULL)` holds that and waits for a `FILE`'s lock; a thread in `getline` holds the
// `FILE` lock and waits in `realloc` for the allocator's lock (glibc's own malloc avoids the
// cycle by locking inside `fork()`, after the stdio locks). Instead, the child repairs: every
// lock records its holder, and a lock that the child inherits held by a thread that did not
// follow is taken over and the data under it made consistent (`heap`, `segment`, `large`
// `after_fork_child`), before anything else in the child can allocate.

/// After `fork`, in the child, whose only thread is a copy of the forking one.
extern "C" fn fork_child() {
    // SAFETY: glibc runs the child handlers in the new process before it returns from
    // `fork()`, while the forking thread's copy is its only thread.
    unsafe {
        segment::after_fork_child();
        large::after_fork_child();
        heap::after_fork_child();
        crate::prof::after_fork_child();
    }
}
