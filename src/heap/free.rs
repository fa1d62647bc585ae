//! Free, a part of `heap`: local frees, remote frees handed to the page's owner, and what a
//! page does when a free empties it or makes room in it.

use super::*;

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
        if (*page).heap.load(Ordering::Relaxed) == h.cast() {
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
            if os::HARDENED && w.fetch_and(!bit, Ordering::Relaxed) & bit == 0 {
                // Freed by another thread since the check above.
                os::fatal_ptr("double free of", p as usize);
            }
            free_remote(h, page, b);
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
pub(super) unsafe fn free_page_event(h: *mut Heap, page: *mut Page) {
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
pub(super) unsafe fn on_notify_stack(page: *mut Page) -> bool {
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
pub(super) unsafe fn kept_empty_page(q: &PageQueue) -> *mut Page {
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
pub(super) unsafe fn retire(h: *mut Heap, page: *mut Page) {
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
pub(super) unsafe fn give_back(h: *mut Heap, page: *mut Page) {
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
pub(super) unsafe fn give_back_quiet(h: *mut Heap, page: *mut Page, now: u64) {
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

/// Most remote frees a heap batches for one page before it hands them over.
const PEND_MAX: u32 = 64;

/// Hand block `b` of `page` back to the page's owner, and count the free in this thread's heap
/// `h` (or, without one, in [`HEAPLESS_FREES`]).
///
/// The caller has cleared the block's live bit, with an atomic RMW: the owner writes the same
/// bitmap words with plain stores (its fast paths take no atomic RMW), so a clear that races
/// with one can be undone, leaving a free block marked live until the owner hands it out
/// again. That only makes a later double free of that block go unnoticed; no store of the
/// owner's can clear a bit a remote thread needs set, because remote threads only clear bits.
/// A block freed twice by two threads at once may pass both checks; any other double free
/// finds the bit clear.
///
/// A thread with a heap batches its remote frees: consecutive frees to one page are linked
/// into a chain in the heap (plain stores to blocks the thread has just given up), which goes
/// to the page's remote-free list with one CAS when a free goes to another page, when it holds
/// [`PEND_MAX`] blocks, and whenever the thread takes its allocation slow path, trims or exits
/// ([`flush_remote`]). So a producer/consumer pair pays one CAS and one `SeqCst` fence per
/// batch instead of per block, and a thread never sits on more than one batch. Threads without
/// a heap push each block at once.
///
/// # Safety
/// `b` is a block of `page` that the caller gives up, its live bit just cleared by the caller;
/// `h` is this thread's heap or a sentinel at or below `DONE`, and does not own the page.
#[inline(never)]
pub(crate) unsafe fn free_remote(h: *mut Heap, page: *mut Page, b: *mut Block) {
    // SAFETY: per the contract; the page and its heap stay mapped for ever.
    unsafe {
        if !count_remote(h, page) {
            return push_one(page, b, 0);
        }
        if (*h).pend_page != page || (*h).pend_count >= PEND_MAX {
            flush_remote(h);
            (*h).pend_page = page;
            (*h).pend_tail = b;
        }
        (*b).next = (*h).pend_head;
        (*h).pend_head = b;
        (*h).pend_count += 1;
    }
}

/// [`free_remote`] for strict mode, unbatched: the block goes to the page's remote-free list at
/// once, its link stored XORed with `mask` (see `remote::push_block`), so that the owner can
/// splice the list into its encoded free list whole. Its live bit stays set: strict mode's
/// `collect` checks and clears it.
///
/// # Safety
/// `b` is a live block of `page` (its bitmap bit is set) that the caller gives up; `h` is this
/// thread's heap or a sentinel at or below `DONE`, and does not own the page.
pub(crate) unsafe fn free_remote_encoded(
    h: *mut Heap,
    page: *mut Page,
    b: *mut Block,
    mask: usize,
) {
    // SAFETY: per the contract.
    unsafe {
        count_remote(h, page);
        push_one(page, b, mask);
    }
}

/// Push one block on `page`'s remote-free list at once (its link XORed with `mask`), then
/// notify the owner if the page is full.
///
/// # Safety
/// `b` is a block of `page` that the caller gives up.
unsafe fn push_one(page: *mut Page, b: *mut Block, mask: usize) {
    // SAFETY: per the contract; descriptors stay mapped for ever.
    unsafe {
        remote::push_block(&(*page).thread_free, b, mask);
        notify_owner(page);
    }
}

/// Count a remote free of a block of `page` in `h`, or in [`HEAPLESS_FREES`] when the thread
/// has no heap (false then).
///
/// # Safety
/// As for [`free_remote`].
#[inline(always)]
unsafe fn count_remote(h: *mut Heap, page: *mut Page) -> bool {
    // SAFETY: per the contract.
    unsafe {
        let cls = slot((*page).class as usize);
        if h as usize <= DONE as usize {
            HEAPLESS_FREES[cls].fetch_add(1, Ordering::Relaxed);
            return false;
        }
        bump(&(*h).frees[cls], 1);
        bump(&(*h).remote_out[cls], 1);
        true
    }
}

/// Hand the remote frees `h` batched (see [`free_remote`]) to their page's owner.
///
/// # Safety
/// The calling thread owns `h` (or holds it locked).
#[inline]
pub(crate) unsafe fn flush_remote(h: *mut Heap) {
    // SAFETY: per the contract; the batch's blocks were given up by this thread.
    unsafe {
        let head = (*h).pend_head;
        if head.is_null() {
            return;
        }
        let page = (*h).pend_page;
        remote::push_chain(
            &(*page).thread_free,
            head,
            (*h).pend_tail,
            (*h).pend_count,
            0,
        );
        (*h).pend_head = ptr::null_mut();
        (*h).pend_tail = ptr::null_mut();
        (*h).pend_page = ptr::null_mut();
        (*h).pend_count = 0;
        notify_owner(page);
    }
}

/// After a push on `page`'s remote-free list: notify its owner if the page is on its full
/// list (see `remote`).
///
/// # Safety
/// `page` is a page descriptor of ours.
#[inline]
unsafe fn notify_owner(page: *mut Page) {
    // SAFETY: descriptors and heaps stay mapped for ever.
    unsafe {
        if remote::remote_should_notify(&(*page).full_state) {
            let owner = (*page).heap.load(Ordering::Acquire).cast::<Heap>();
            remote::push_notify(&(*owner).notify, page, &(*page).notify_next);
        }
    }
}
