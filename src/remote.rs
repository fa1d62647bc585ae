//! The lock-free protocols between a page's owner and other threads, in one place so that the
//! code the allocator runs is the code the `loom` models check (`tests/loom_models.rs`, built
//! with `RUSTFLAGS="--cfg loom"`, where `crate::sync::atomic` is loom's).
//!
//! 1. **Remote-free list.** Another thread frees a block by pushing it on the page's
//!    `thread_free` list ([`push_block`]: write the link, then one CAS). The owner takes the
//!    whole list with one swap ([`take_blocks`]) and walks it privately.
//! 2. **Full pages.** The owner keeps pages with no free block on a full list it never scans.
//!    `full_state` tells remote freers whether to notify: the owner stores `FULL`
//!    ([`owner_mark_full`]) and then re-reads `thread_free`; a remote freer pushes and then
//!    reads `full_state` ([`remote_should_notify`]); all `SeqCst`, so at least one of the two
//!    sees the other (Dekker). Each side separates its store from its load with a `SeqCst`
//!    fence: the fence pair is what the memory model (and loom, which does not model `SeqCst`
//!    loads and stores beyond acquire/release) guarantees. Either the owner keeps the page
//!    queued, or exactly one remote freer moves `FULL -> NOTIFIED` and pushes the page on the
//!    heap's notify stack.
//! 3. **Notify stack.** A Treiber stack of pages ([`push_notify`]), drained whole by the owner
//!    ([`take_notify`]). A page is on it at most once: only the `FULL -> NOTIFIED` winner
//!    pushes it, and only the owner, after draining it, resets the state.
//!
//! A heap whose thread exits is handed over whole (under the heap pool's lock) to the next
//! thread; the protocols above do not change with the owner, which the third loom model checks.

use crate::sync::atomic::{AtomicPtr, AtomicU8, Ordering, fence};

/// A free block: its first word links to the next free block.
#[repr(C)]
pub struct Block {
    pub next: *mut Block,
}

/// `full_state`: the page is not on the full list.
pub const NOT_FULL: u8 = 0;
/// The page is on its heap's full list; a remote free must notify the heap.
pub const FULL: u8 = 1;
/// A remote free has pushed the page on its heap's notify stack.
pub const NOTIFIED: u8 = 2;

/// Push a freed block on a remote-free list.
///
/// # Safety
/// `b` points to a block whose first word the caller may write and that no one else uses.
#[inline]
pub unsafe fn push_block(list: &AtomicPtr<Block>, b: *mut Block) {
    let mut head = list.load(Ordering::Relaxed);
    loop {
        // SAFETY: the caller owns `b` until the CAS publishes it.
        unsafe { (*b).next = head };
        match list.compare_exchange_weak(head, b, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return,
            Err(cur) => head = cur,
        }
    }
}

/// Take the whole remote-free list (owner only). The links were published by the pushers'
/// CAS, which this swap acquires.
#[inline]
pub fn take_blocks(list: &AtomicPtr<Block>) -> *mut Block {
    if list.load(Ordering::Relaxed).is_null() {
        return core::ptr::null_mut();
    }
    list.swap(core::ptr::null_mut(), Ordering::Acquire)
}

/// After [`push_block`] on a page's list: whether this thread must push the page on its
/// heap's notify stack (it is the one that moved the page from `FULL` to `NOTIFIED`).
#[inline]
pub fn remote_should_notify(state: &AtomicU8) -> bool {
    fence(Ordering::SeqCst);
    state.load(Ordering::Relaxed) == FULL
        && state
            .compare_exchange(FULL, NOTIFIED, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
}

/// The owner moves a page with no free block to its full list. Returns false when a remote
/// free raced with it and may not have seen `FULL`: the page must then stay queued (its
/// `thread_free` holds blocks). Returns true when the page may sit on the full list: a later
/// remote free will notify, or already has (`NOTIFIED`).
#[inline]
pub fn owner_mark_full(state: &AtomicU8, list: &AtomicPtr<Block>) -> bool {
    if state.load(Ordering::Relaxed) == NOTIFIED {
        return true; // still on the notify stack; draining it moves the page back
    }
    state.store(FULL, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    list.load(Ordering::Relaxed).is_null()
        || state
            .compare_exchange(FULL, NOT_FULL, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
}

/// The owner takes a page off its full list by itself (a local free made room). A page that
/// is already `NOTIFIED` stays so until the owner drains the notify stack.
#[inline]
pub fn owner_unmark_full(state: &AtomicU8) {
    if state.load(Ordering::Relaxed) == FULL {
        let _ = state.compare_exchange(FULL, NOT_FULL, Ordering::SeqCst, Ordering::Relaxed);
    }
}

/// The owner has taken a page off the notify stack: remote frees may notify again once the
/// owner next marks it full.
#[inline]
pub fn owner_drained(state: &AtomicU8) {
    state.store(NOT_FULL, Ordering::Relaxed);
}

/// Push `item` on a Treiber stack linked through `link` (a field of `item`).
///
/// # Safety
/// `item` stays valid while on the stack, and is on no other list linked through `link`.
#[inline]
pub unsafe fn push_notify<T>(stack: &AtomicPtr<T>, item: *mut T, link: &AtomicPtr<T>) {
    let mut top = stack.load(Ordering::Relaxed);
    loop {
        link.store(top, Ordering::Relaxed);
        match stack.compare_exchange_weak(top, item, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(cur) => top = cur,
        }
    }
}

/// Take the whole notify stack (owner only).
#[inline]
pub fn take_notify<T>(stack: &AtomicPtr<T>) -> *mut T {
    stack.swap(core::ptr::null_mut(), Ordering::Acquire)
}
