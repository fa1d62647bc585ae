//! The lock-free protocols between a page's owner and other threads, in one place so that the
//! code the allocator runs is the code the `loom` models check (`tests/loom_models.rs`, built
//! with `RUSTFLAGS="--cfg loom"`, where `crate::sync::atomic` is loom's).
//!
//! 1. **Remote-free list.** Another thread frees a block by pushing it on the page's
//!    `thread_free` list ([`push_block`], or a batch with [`push_chain`]: write the link, then
//!    one CAS that also adds to the list's count). The owner takes the whole list and its
//!    count with one swap ([`take_blocks`]).
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

/// A remote-free list's word holds the head block's address in its low [`COUNT_SHIFT`] bits
/// and, above them, how many blocks the list holds: the owner takes both with one swap and
/// need not walk the list to count it (user-space addresses lie below 2^48; a page holds at
/// most 4,096 blocks, far below 2^16).
pub const COUNT_SHIFT: u32 = 48;
const ADDR_MASK: usize = (1 << COUNT_SHIFT) - 1;

/// The head block of a remote-free list's word.
#[inline(always)]
fn head_of(word: *mut Block) -> *mut Block {
    word.map_addr(|a| a & ADDR_MASK)
}

/// Push a chain of freed blocks, `head` to `tail`, `n` of them, already linked through their
/// first words, on a remote-free list with one CAS; `tail`'s link gets the old head XORed with
/// `mask` (0 in the default mode; strict mode stores its links encoded, so that the owner can
/// splice the list into its free list whole). A single block is a chain of one
/// ([`push_block`]); `heap::free::flush_remote` pushes the batches of the default mode.
///
/// # Safety
/// `head` to `tail` is a chain of `n` blocks the caller may write and that no one else uses;
/// `tail`'s link is overwritten.
#[inline]
pub unsafe fn push_chain(
    list: &AtomicPtr<Block>,
    head: *mut Block,
    tail: *mut Block,
    n: u32,
    mask: usize,
) {
    let mut old = list.load(Ordering::Relaxed);
    loop {
        // SAFETY: the caller owns the chain until the CAS publishes it.
        unsafe { (*tail).next = (head_of(old) as usize ^ mask) as *mut Block };
        let count = (old.addr() >> COUNT_SHIFT) + n as usize;
        let new = head.map_addr(|a| a | (count << COUNT_SHIFT));
        match list.compare_exchange_weak(old, new, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return,
            Err(cur) => old = cur,
        }
    }
}

/// Push one freed block on a remote-free list (see [`push_chain`]).
///
/// # Safety
/// `b` points to a block whose first word the caller may write and that no one else uses.
#[inline]
pub unsafe fn push_block(list: &AtomicPtr<Block>, b: *mut Block, mask: usize) {
    // SAFETY: forwarded contract.
    unsafe { push_chain(list, b, b, 1, mask) }
}

/// Take the whole remote-free list (owner only): its head and how many blocks it holds. The
/// links were published by the pushers' CAS, which this swap acquires.
#[inline]
pub fn take_blocks(list: &AtomicPtr<Block>) -> (*mut Block, u32) {
    if list.load(Ordering::Relaxed).is_null() {
        return (core::ptr::null_mut(), 0);
    }
    let word = list.swap(core::ptr::null_mut(), Ordering::Acquire);
    (head_of(word), (word.addr() >> COUNT_SHIFT) as u32)
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

#[cfg(all(test, not(loom)))]
mod tests {
    //! The protocols with real threads and real blocks; run under Miri too (`cargo +nightly
    //! miri test --lib`), which checks the pointer accesses and the data races.
    use super::*;
    use std::collections::HashSet;

    /// Blocks as a real allocation, so that Miri tracks their provenance.
    struct Blocks(Vec<Block>);

    impl Blocks {
        fn new(n: usize) -> Self {
            Blocks(
                (0..n)
                    .map(|_| Block {
                        next: core::ptr::null_mut(),
                    })
                    .collect(),
            )
        }
    }

    #[derive(Clone, Copy)]
    struct SendPtr(*mut Block);
    // SAFETY: each block is pushed by exactly one thread, which owns it until the push.
    unsafe impl Send for SendPtr {}

    #[test]
    fn remote_frees_from_several_threads_all_arrive_once() {
        const PER_THREAD: usize = if cfg!(miri) { 20 } else { 1000 };
        const THREADS: usize = 3;
        let mut blocks = Blocks::new(PER_THREAD * THREADS);
        let base = blocks.0.as_mut_ptr();
        let list: AtomicPtr<Block> = AtomicPtr::new(core::ptr::null_mut());
        let mut got = HashSet::new();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let list = &list;
                // SAFETY: in bounds of `blocks`, which outlives the scope.
                let mine: Vec<SendPtr> = (0..PER_THREAD)
                    .map(|i| SendPtr(unsafe { base.add(t * PER_THREAD + i) }))
                    .collect();
                s.spawn(move || {
                    for b in mine {
                        // SAFETY: this thread owns `b` until it is pushed.
                        unsafe { push_block(list, b.0, 0) };
                    }
                });
            }
            // The owner collects while the others push.
            while got.len() < PER_THREAD * THREADS {
                let (mut b, _) = take_blocks(&list);
                while !b.is_null() {
                    assert!(got.insert(b as usize), "block {b:p} arrived twice");
                    // SAFETY: the swap gave this thread the whole list.
                    b = unsafe { (*b).next };
                }
                std::thread::yield_now();
            }
        });
        assert!(take_blocks(&list).0.is_null());
        for i in 0..PER_THREAD * THREADS {
            // SAFETY: in bounds.
            assert!(got.contains(&(unsafe { base.add(i) } as usize)));
        }
    }

    #[test]
    fn full_page_handshake_single_thread() {
        let state = AtomicU8::new(NOT_FULL);
        let list: AtomicPtr<Block> = AtomicPtr::new(core::ptr::null_mut());
        let mut blocks = Blocks::new(2);
        let b0: *mut Block = &mut blocks.0[0];
        // No remote free pending: the page may go to the full list.
        assert!(owner_mark_full(&state, &list));
        assert_eq!(state.load(Ordering::Relaxed), FULL);
        // The first remote free notifies, the second does not.
        // SAFETY: `b0` is ours and unused.
        unsafe { push_block(&list, b0, 0) };
        assert!(remote_should_notify(&state));
        assert!(!remote_should_notify(&state));
        assert_eq!(state.load(Ordering::Relaxed), NOTIFIED);
        // Still on the notify stack: marking it full again is fine, the drain brings it back.
        assert!(owner_mark_full(&state, &list));
        owner_drained(&state);
        assert_eq!(take_blocks(&list), (b0, 1));
        // A remote free that raced before FULL was stored: the page must stay queued.
        let b1: *mut Block = &mut blocks.0[1];
        // SAFETY: `b1` is ours and unused.
        unsafe { push_block(&list, b1, 0) };
        assert!(!owner_mark_full(&state, &list));
        assert_eq!(state.load(Ordering::Relaxed), NOT_FULL);
        owner_unmark_full(&state);
        assert_eq!(state.load(Ordering::Relaxed), NOT_FULL);
    }

    struct Node {
        link: AtomicPtr<Node>,
    }

    struct SendNode(*mut Node);
    // SAFETY: each node is pushed once, by the thread it was given to.
    unsafe impl Send for SendNode {}

    #[test]
    fn notify_stack_keeps_every_push() {
        const N: usize = if cfg!(miri) { 16 } else { 500 };
        let mut nodes: Vec<Node> = (0..2 * N)
            .map(|_| Node {
                link: AtomicPtr::new(core::ptr::null_mut()),
            })
            .collect();
        let base = nodes.as_mut_ptr();
        let stack: AtomicPtr<Node> = AtomicPtr::new(core::ptr::null_mut());
        std::thread::scope(|s| {
            for t in 0..2 {
                let stack = &stack;
                // SAFETY: in bounds of `nodes`, which outlives the scope.
                let mine: Vec<SendNode> = (0..N)
                    .map(|i| SendNode(unsafe { base.add(t * N + i) }))
                    .collect();
                s.spawn(move || {
                    for n in mine {
                        // SAFETY: `n` stays valid and is on no other stack.
                        unsafe { push_notify(stack, n.0, &(*n.0).link) };
                    }
                });
            }
        });
        let mut seen = HashSet::new();
        let mut p = take_notify(&stack);
        while !p.is_null() {
            assert!(seen.insert(p as usize));
            // SAFETY: the swap gave us the whole stack.
            p = unsafe { (*p).link.load(Ordering::Relaxed) };
        }
        assert_eq!(seen.len(), 2 * N);
    }
}
