//! A spin lock that never allocates, with raw lock/unlock for the `fork` handlers.
//!
//! The allocator's locks guard only slow paths (segment cache, large blocks, heap pool), each
//! held for a few hundred instructions at most, so spinning with `spin_loop` and yielding to
//! the scheduler after a while beats a futex-based lock that could allocate or re-enter.

/// The atomics of the lock-free protocols (`remote`): loom's when built with `--cfg loom`.
pub mod atomic {
    #[cfg(loom)]
    pub use loom::sync::atomic::{AtomicPtr, AtomicU8, Ordering, fence};

    #[cfg(not(loom))]
    pub use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering, fence};
}

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises every access to `value`.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the value with it.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    pub fn lock(&self) -> SpinGuard<'_, T> {
        self.raw_lock();
        SpinGuard { lock: self }
    }

    /// Take the lock without a guard (for `pthread_atfork`'s prepare handler).
    pub fn raw_lock(&self) {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                spins += 1;
                if spins < 64 {
                    core::hint::spin_loop();
                } else {
                    // SAFETY: sched_yield has no preconditions and does not allocate.
                    unsafe { libc::sched_yield() };
                }
            }
        }
    }

    /// Release a lock taken with [`raw_lock`](Self::raw_lock).
    ///
    /// # Safety
    /// The lock is held, by this thread or (after `fork`) by the thread that forked.
    pub unsafe fn raw_unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard holds the lock.
        unsafe { self.lock.raw_unlock() };
    }
}
