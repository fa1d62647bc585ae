//! A spin lock that never allocates and knows which thread holds it.
//!
//! The allocator's locks guard only slow paths (segment cache, large blocks, heap pool), each
//! held for a few hundred instructions at most, so spinning with `spin_loop` and yielding to
//! the scheduler after a while beats a futex-based lock that could allocate or re-enter.
//!
//! The lock word holds the holder's `pthread_self()` (never 0), not just a flag, for `fork`:
//! no allocator lock is held across `fork()` (see `init`), so the child may inherit a lock
//! held by a thread that does not exist there, with the data under it half updated. The
//! child's handler finds such a lock with [`SpinLock::take_orphan`], repairs the data and
//! releases it; a lock held by the forking thread itself (a `fork` from a signal handler that
//! interrupted the allocator) is that thread's, and is left alone.

/// The atomics of the lock-free protocols (`remote`): loom's when built with `--cfg loom`.
pub mod atomic {
    #[cfg(loom)]
    pub use loom::sync::atomic::{AtomicPtr, AtomicU8, Ordering, fence};

    #[cfg(not(loom))]
    pub use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering, fence};
}

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicUsize, Ordering};

pub struct SpinLock<T> {
    /// The holder's thread id ([`me`]), 0 when free.
    holder: AtomicUsize,
    value: UnsafeCell<T>,
}

/// The calling thread's id: `pthread_self()`, the address of its thread control block, which
/// is never 0 and is the same in the child of `fork` as in the parent thread it copies.
#[inline]
fn me() -> usize {
    // SAFETY: pthread_self has no preconditions and does not allocate.
    unsafe { libc::pthread_self() as usize }
}

// SAFETY: the lock serialises every access to `value`.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the value with it.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(value: T) -> Self {
        SpinLock {
            holder: AtomicUsize::new(0),
            value: UnsafeCell::new(value),
        }
    }

    pub fn lock(&self) -> SpinGuard<'_, T> {
        let id = me();
        let mut spins = 0u32;
        while self
            .holder
            .compare_exchange_weak(0, id, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.holder.load(Ordering::Relaxed) != 0 {
                spins += 1;
                if spins < 64 {
                    core::hint::spin_loop();
                } else {
                    // SAFETY: sched_yield has no preconditions and does not allocate.
                    unsafe { libc::sched_yield() };
                }
            }
        }
        SpinGuard { lock: self }
    }

    /// Whether the calling thread holds the lock (a signal handler that interrupted its
    /// critical section must not wait for it).
    pub fn held_by_me(&self) -> bool {
        self.holder.load(Ordering::Relaxed) == me()
    }

    /// In the child of `fork`, before any other thread exists: if the lock is held by a
    /// thread other than the caller (one that did not follow into the child and will never
    /// release it), make the caller its holder and return the guard, so that the caller can
    /// repair what that thread left half done. `None` when the lock is free, or held by the
    /// caller itself (its own interrupted critical section, which goes on when the signal
    /// handler that forked returns).
    ///
    /// # Safety
    /// The calling thread is the only thread of the process.
    pub unsafe fn take_orphan(&self) -> Option<SpinGuard<'_, T>> {
        let id = me();
        let h = self.holder.load(Ordering::Acquire);
        if h == 0 || h == id {
            return None;
        }
        self.holder.store(id, Ordering::Relaxed);
        Some(SpinGuard { lock: self })
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
        self.lock.holder.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock held by another thread is an orphan (what a `fork` child finds when that thread
    /// did not follow); one held by the caller or by nobody is not.
    #[test]
    fn take_orphan_only_takes_another_threads_lock() {
        static L: SpinLock<u32> = SpinLock::new(0);
        // SAFETY: no other thread uses `L` yet.
        assert!(unsafe { L.take_orphan() }.is_none(), "free lock");
        let g = L.lock();
        // SAFETY: as above.
        assert!(unsafe { L.take_orphan() }.is_none(), "held by the caller");
        drop(g);
        let (held, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut g = L.lock();
                *g = 7;
                held.wait();
                release.wait();
                // The guard's drop would release the lock the caller took over: forget it,
                // as a thread that vanished in `fork` never releases its lock.
                core::mem::forget(g);
            });
            held.wait();
            // SAFETY: the other thread holds the lock and waits; nothing else touches it.
            let mut g = unsafe { L.take_orphan() }.expect("held by another thread");
            assert_eq!(*g, 7);
            *g = 8;
            drop(g);
            release.wait();
        });
        assert_eq!(*L.lock(), 8);
    }
}
