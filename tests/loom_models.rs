//! loom models of the lock-free protocols in `src/remote.rs`, running the allocator's own
//! functions over loom's atomics. Run with:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test --release --test loom_models
//! ```
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use loom::thread;
use mapalloc::remote::{self, Block, FULL, NOT_FULL, NOTIFIED};

/// A page as far as the protocols see it.
struct Page {
    thread_free: AtomicPtr<Block>,
    full_state: AtomicU8,
    notify_next: AtomicPtr<Page>,
}

impl Page {
    fn new() -> Page {
        Page {
            thread_free: AtomicPtr::new(std::ptr::null_mut()),
            full_state: AtomicU8::new(NOT_FULL),
            notify_next: AtomicPtr::new(std::ptr::null_mut()),
        }
    }
}

fn blocks(n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| {
            Box::into_raw(Box::new(Block {
                next: std::ptr::null_mut(),
            })) as usize
        })
        .collect()
}

fn walk(mut b: *mut Block, out: &mut Vec<usize>) {
    while !b.is_null() {
        out.push(b as usize);
        // SAFETY: every block on a list is one of the model's live boxes.
        b = unsafe { (*b).next };
    }
}

/// The owner's collection: take the whole list, walk it, and check that its count (kept in the
/// list's word by the pushers' CAS) is the number of blocks on it.
fn take_counted(list: &AtomicPtr<Block>, out: &mut Vec<usize>) {
    let before = out.len();
    let (head, n) = remote::take_blocks(list);
    walk(head, out);
    assert_eq!(
        out.len() - before,
        n as usize,
        "the count matches the blocks"
    );
}

/// A remote free as `heap::free::notify_owner` completes it (after a push of one block or of
/// a batch): push, then notify if the page was full.
fn remote_free(page: &Arc<Page>, stack: &AtomicPtr<Page>, b: usize) {
    // SAFETY: the block is the calling thread's to free; the page outlives the model.
    unsafe {
        remote::push_block(&page.thread_free, b as *mut Block, 0);
        if remote::remote_should_notify(&page.full_state) {
            let p = Arc::as_ptr(page) as *mut Page;
            remote::push_notify(stack, p, &page.notify_next);
        }
    }
}

/// Remote frees from two threads and the owner's collection: every block is collected
/// exactly once, none lost, none twice.
#[test]
fn remote_free_push_and_collect() {
    loom::model(|| {
        let page = Arc::new(Page::new());
        let bs = blocks(4);
        let mut pushers = Vec::new();
        for t in 0..2 {
            let page = page.clone();
            let mine = vec![bs[2 * t], bs[2 * t + 1]];
            pushers.push(thread::spawn(move || {
                for b in mine {
                    // SAFETY: each block is pushed by exactly one thread.
                    unsafe { remote::push_block(&page.thread_free, b as *mut Block, 0) };
                }
            }));
        }
        let mut got = Vec::new();
        take_counted(&page.thread_free, &mut got);
        for p in pushers {
            p.join().unwrap();
        }
        take_counted(&page.thread_free, &mut got);
        got.sort();
        let mut want = bs.clone();
        want.sort();
        assert_eq!(got, want);
        for b in bs {
            // SAFETY: boxes made by `blocks`, freed once.
            drop(unsafe { Box::from_raw(b as *mut Block) });
        }
    });
}

/// A batched remote free (`heap::free::flush_remote`: a chain linked by its thread, then one
/// `push_chain`) racing with a single push and the owner's collection: every block is
/// collected exactly once, and the chain arrives whole.
#[test]
fn remote_chain_push_and_collect() {
    loom::model(|| {
        let page = Arc::new(Page::new());
        let bs = blocks(3);
        let chain = {
            let page = page.clone();
            let (head, tail) = (bs[0], bs[1]);
            thread::spawn(move || {
                // SAFETY: the two blocks are this thread's; it links them, then publishes them.
                unsafe {
                    (*(head as *mut Block)).next = tail as *mut Block;
                    remote::push_chain(
                        &page.thread_free,
                        head as *mut Block,
                        tail as *mut Block,
                        2,
                        0,
                    );
                }
            })
        };
        let single = {
            let page = page.clone();
            let b = bs[2];
            // SAFETY: the block is pushed by this thread only.
            thread::spawn(move || unsafe {
                remote::push_block(&page.thread_free, b as *mut Block, 0)
            })
        };
        let mut got = Vec::new();
        take_counted(&page.thread_free, &mut got);
        chain.join().unwrap();
        single.join().unwrap();
        take_counted(&page.thread_free, &mut got);
        let at = got
            .iter()
            .position(|&b| b == bs[0])
            .expect("chain head collected");
        assert_eq!(got.get(at + 1), Some(&bs[1]), "the chain arrives whole");
        got.sort();
        let mut want = bs.clone();
        want.sort();
        assert_eq!(got, want);
        for b in bs {
            // SAFETY: boxes made by `blocks`, freed once.
            drop(unsafe { Box::from_raw(b as *mut Block) });
        }
    });
}

/// The owner marks a page full while a remote thread frees into it: the page is never
/// stranded, i.e. if blocks wait on its list then either the owner kept it queued or the
/// page was pushed on the notify stack, exactly once.
#[test]
fn full_page_is_never_stranded() {
    loom::model(|| {
        let page = Arc::new(Page::new());
        let stack: Arc<AtomicPtr<Page>> = Arc::new(AtomicPtr::new(std::ptr::null_mut()));
        let bs = blocks(1);
        let remote_thread = {
            let (page, stack) = (page.clone(), stack.clone());
            let b = bs[0];
            thread::spawn(move || {
                remote_free(&page, &stack, b);
            })
        };
        let stays_full = remote::owner_mark_full(&page.full_state, &page.thread_free);
        remote_thread.join().unwrap();
        let notified = !stack.load(Ordering::SeqCst).is_null();
        let waiting = !page.thread_free.load(Ordering::SeqCst).is_null();
        assert!(waiting, "the remote free happened");
        assert!(
            !stays_full || notified,
            "page on the full list with blocks waiting and no notification"
        );
        if notified {
            assert_eq!(page.full_state.load(Ordering::SeqCst), NOTIFIED);
            let top = remote::take_notify(&stack);
            assert_eq!(top, Arc::as_ptr(&page) as *mut Page);
            assert!(
                page.notify_next.load(Ordering::SeqCst).is_null(),
                "pushed once"
            );
        }
        // SAFETY: the box made by `blocks`, freed once.
        drop(unsafe { Box::from_raw(bs[0] as *mut Block) });
    });
}

/// A heap is abandoned by its exiting thread (its full page is FULL) and adopted by another
/// thread through the pool's lock, while a third thread frees into the page: the adopter, or a
/// later drain by it, gets the block; the page is never stranded across the hand-over.
#[test]
fn abandoned_heap_adoption_with_remote_free() {
    loom::model(|| {
        let page = Arc::new(Page::new());
        let stack: Arc<AtomicPtr<Page>> = Arc::new(AtomicPtr::new(std::ptr::null_mut()));
        // The pool: 0 = owned by the first thread, 1 = abandoned (handed over).
        let pool = Arc::new(loom::sync::Mutex::new(0u8));
        let bs = blocks(1);
        let owner = {
            let (page, pool) = (page.clone(), pool.clone());
            thread::spawn(move || {
                // Kept queued (false) or on the full list (true): both are checked below.
                let _ = remote::owner_mark_full(&page.full_state, &page.thread_free);
                *pool.lock().unwrap() = 1; // thread exit: abandon
            })
        };
        let freer = {
            let (page, stack) = (page.clone(), stack.clone());
            let b = bs[0];
            thread::spawn(move || {
                remote_free(&page, &stack, b);
            })
        };
        // The adopter: takes the heap once it is abandoned, then drains and collects.
        let mut collected = Vec::new();
        let adopted = *pool.lock().unwrap() == 1;
        if adopted {
            let n = remote::take_notify(&stack);
            if !n.is_null() {
                remote::owner_drained(&page.full_state);
            }
            walk(remote::take_blocks(&page.thread_free).0, &mut collected);
        }
        owner.join().unwrap();
        freer.join().unwrap();
        // Whatever the adopter did not see yet must be reachable later: the block is either
        // collected, or on the list with the page notified or not marked full (then it is
        // still in its queue, where the new owner will find it).
        if collected.is_empty() {
            assert!(!page.thread_free.load(Ordering::SeqCst).is_null());
            let state = page.full_state.load(Ordering::SeqCst);
            let notified = !stack.load(Ordering::SeqCst).is_null();
            assert!(
                state != FULL || notified || !adopted,
                "block stranded on a full page after adoption"
            );
        } else {
            assert_eq!(collected, bs);
        }
        // SAFETY: the box made by `blocks`, freed once.
        drop(unsafe { Box::from_raw(bs[0] as *mut Block) });
    });
}
