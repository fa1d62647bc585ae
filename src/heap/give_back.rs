//! Giving memory back, a part of `heap`: free pages of a heap's segments, empty segments in the
//! segment cache and cached large blocks are purged once they have been free for the purge
//! delay. There is no background thread: the owner checks the deadline on its slow paths
//! (`alloc_slow`, `free_slow`), which a program that is still calling the allocator reaches
//! soon enough, and the fast path pays nothing. `MADV_DONTNEED` rather than `MADV_FREE`: the
//! pages leave the resident set at once, which is what users measure (MADV_FREE pages stay
//! counted in RSS until the kernel is short of memory), and a purged page reads as zero when
//! reused.

use super::*;

/// No segment could be mapped (the address space is short: `RLIMIT_AS`): give back what
/// `h` and the caches hold unused (empty pages `h` keeps, cached segments, cached large
/// blocks), so that a mapping can be made in their place. Returns the bytes released.
///
/// # Safety
/// The caller owns `h` and holds no page of it across the call.
#[cold]
#[inline(never)]
pub(super) unsafe fn reclaim(h: *mut Heap) -> usize {
    // SAFETY: per the contract.
    let own = unsafe { trim_heap(h, os::now_ms()) };
    own + segment::trim_cache() + large::trim()
}

/// Note that something freed at `now` must be purged after the delay (owner only).
///
/// # Safety
/// `h` is owned by the calling thread (or locked by it).
pub(super) unsafe fn schedule_purge(h: *mut Heap, now: u64) {
    let due = now.saturating_add(crate::config::purge_delay_ms() as u64);
    // SAFETY: per the contract.
    unsafe {
        if (*h).purge_due == 0 || due < (*h).purge_due {
            (*h).purge_due = due;
        }
        if due <= now {
            purge(h, now, false);
        }
    }
}

/// Note that this thread freed a large block at `now` (its cache decays like pages).
pub fn large_freed(now: u64) {
    let h = tls_heap();
    if h as usize > DONE as usize {
        // SAFETY: a pointer above DONE in our TLS is this thread's own heap.
        unsafe { schedule_purge(h, now) };
    }
}

/// Whether this slow-path call should check the purge deadline: something is waiting to be
/// purged, and the last check was a while ago. The clock (`clock_gettime`, some 30
/// instructions) costs more than the rest of a slow path that only retires an empty page, as
/// in a malloc/free loop, so the OS layer's cheap clock (one instruction: `os::cheap_clock`)
/// rations it to one read per `os::cheap_ticks_per_check()` ticks, a few tenths of a
/// millisecond, far below any purge delay worth setting. All it needs of that clock is that it
/// rises; its unit does not matter. Where there is none (tests on other architectures), every
/// [`PURGE_CHECK_EVERY`]th call checks.
///
/// # Safety
/// `h` is owned by the calling thread.
#[inline(always)]
pub(super) unsafe fn purge_tick(h: *mut Heap) -> bool {
    // SAFETY: per the contract.
    unsafe {
        if (*h).purge_due == 0 {
            return false;
        }
        let every = os::cheap_ticks_per_check();
        if every == 0 {
            (*h).last_check = (*h).last_check.wrapping_add(1);
            return (*h).last_check % PURGE_CHECK_EVERY == 0;
        }
        let t = os::cheap_clock();
        if t.wrapping_sub((*h).last_check) < every {
            return false;
        }
        (*h).last_check = t;
        true
    }
}

/// See [`purge_tick`].
const PURGE_CHECK_EVERY: u64 = 8;

/// Purge this heap if its deadline has passed.
///
/// # Safety
/// `h` is owned by the calling thread.
#[cold]
#[inline(never)]
pub(super) unsafe fn purge_check(h: *mut Heap) {
    let now = os::now_ms();
    // SAFETY: the caller owns `h`.
    unsafe {
        if (*h).purge_due != 0 && now >= (*h).purge_due {
            purge(h, now, false);
        }
    }
}

/// At thread exit, while the thread still owns its heap: purge every free page of its
/// segments and the empty page each class keeps, so that the memory an exited thread freed
/// does not stay resident until another thread adopts the heap (nobody else may touch the
/// heap's pages: its owner is gone, and purging on its behalf from another thread raced with
/// adoption and remote frees). The pages stay mapped for the next owner.
///
/// # Safety
/// `h` is owned by the calling thread.
pub(super) unsafe fn exit_purge(h: *mut Heap) {
    let now = os::now_ms();
    // SAFETY: per the contract.
    unsafe {
        purge(h, now, false);
        // One syscall for all of it where the kernel allows (see `os::PurgeBatch`); flushed
        // before the heap is let go of.
        let mut batch = os::PurgeBatch::new();
        for c in 0..NUM_CLASSES {
            let page = kept_empty_page(&(*h).queues[slot(c)]);
            if !page.is_null() {
                segment::purge_empty_page(segment::segment_of_page(page), page, &mut batch);
                (*page).freed_at = 0;
            }
        }
        for k in 0..NUM_KINDS {
            let mut seg = *(*h).segs.get(k).unwrap_or(&ptr::null_mut());
            while !seg.is_null() {
                (*seg).purge_pages(u64::MAX, &mut batch);
                seg = (*seg).next;
            }
        }
        batch.flush();
    }
}

/// Purge what has been free for the delay (everything when `all`): the heap's unused pages,
/// the segment cache and the large-block cache. Returns the bytes given back.
///
/// # Safety
/// `h` is owned by the calling thread (or locked by it, or abandoned and held under the pool
/// lock).
pub(super) unsafe fn purge(h: *mut Heap, now: u64, all: bool) -> usize {
    let delay = crate::config::purge_delay_ms() as u64;
    let cutoff = if all {
        u64::MAX
    } else {
        now.saturating_sub(delay)
    };
    let mut next = u64::MAX;
    let mut bytes = 0;
    // Every range purged below goes through one batch (one syscall where the kernel allows,
    // see `os::PurgeBatch`), flushed before a page or segment can leave the heap's hands.
    let mut batch = os::PurgeBatch::new();
    // SAFETY: the caller owns `h`; the segments on its lists are its own.
    unsafe {
        for k in 0..NUM_KINDS {
            let mut seg = *(*h).segs.get(k).unwrap_or(&ptr::null_mut());
            while !seg.is_null() {
                let (n, b) = (*seg).purge_pages(cutoff, &mut batch);
                next = next.min(n);
                bytes += b;
                seg = (*seg).next;
            }
        }
        // Pages still queued: those that remote frees emptied (their blocks wait on the
        // remote-free list until the owner looks, and a page behind the first of its queue
        // may not be looked at for a long time) go back to their segment, whose free pages
        // are purged below after the delay; the one page a class keeps (see `retire`) has its
        // memory purged once it has been seen empty for the delay.
        drain_notify(h);
        for c in 0..NUM_CLASSES {
            let mut page = (*h).queues[slot(c)].first;
            while !page.is_null() {
                let after = (*page).next;
                collect(page);
                if (*page).used == 0 && !on_notify_stack(page) {
                    let q = &mut (*h).queues[slot(c)];
                    if q.first != page || q.last != page {
                        queue_remove(q, page);
                        // The page's segment may go to the segment cache, where any thread
                        // can take it: nothing of it may wait in the batch.
                        batch.flush();
                        give_back_quiet(h, page, now);
                    } else if (*page).dirty && (*page).built != 0 {
                        if (*page).freed_at == 0 {
                            (*page).freed_at = now; // first seen empty
                            next = next.min(now);
                        } else if (*page).freed_at <= cutoff {
                            bytes += segment::purge_empty_page(
                                segment::segment_of_page(page),
                                page,
                                &mut batch,
                            );
                            (*page).freed_at = 0;
                        } else {
                            next = next.min((*page).freed_at);
                        }
                    }
                }
                page = after;
            }
        }
        batch.flush();
        next = next.min(segment::cache_decay(cutoff, &mut bytes));
        next = next.min(crate::large::decay(cutoff, &mut bytes));
        (*h).purge_due = if next == u64::MAX {
            0
        } else {
            next.saturating_add(delay).max(1)
        };
    }
    bytes
}

/// `malloc_trim`: give back everything this thread can reach safely: its own heap (empty pages
/// it keeps for reuse included) and every abandoned heap, then the segment and large-block
/// caches. Live threads' heaps are their owners' alone; they purge on their own schedule.
/// Returns the bytes purged or unmapped.
pub fn trim() -> usize {
    let now = os::now_ms();
    let mut bytes = 0;
    let h = tls_heap();
    if h as usize > DONE as usize {
        // SAFETY: this thread's own heap.
        bytes += unsafe { trim_heap(h, now) };
    }
    {
        let mut pool = POOL.lock();
        reclaim_dead(&mut pool);
        let mut a = pool.abandoned;
        while !a.is_null() {
            // SAFETY: an abandoned heap has no owner; holding the pool lock keeps anyone from
            // adopting it meanwhile. Remote frees into its pages are atomic pushes that
            // `trim_heap` copes with like the owner would.
            unsafe {
                bytes += trim_heap(a, now);
                a = (*a).next_abandoned;
            }
        }
    }
    {
        let b = BACKUP.lock();
        if *b != 0 {
            // SAFETY: the lock gives this thread exclusive use of the backup heap.
            bytes += unsafe { trim_heap(*b as *mut Heap, now) };
        }
    }
    bytes + segment::trim_cache() + crate::large::trim()
}

/// Collect remote frees, give every empty page back, purge all free pages of `h`.
///
/// # Safety
/// As for [`purge`].
pub(super) unsafe fn trim_heap(h: *mut Heap, now: u64) -> usize {
    // SAFETY: per the contract, `h` and its pages are ours to manage.
    unsafe {
        crate::strict::flush_quarantine(h);
        flush_remote(h);
        drain_notify(h);
        for c in 0..NUM_CLASSES {
            let mut page = (*h).queues[slot(c)].first;
            while !page.is_null() {
                let next = (*page).next;
                collect(page);
                if (*page).used == 0 && !on_notify_stack(page) {
                    queue_remove(&mut (*h).queues[slot(c)], page);
                    // Quiet: with a zero purge delay `give_back` would run `purge`, which
                    // walks and changes these queues under our feet; it runs below anyway.
                    give_back_quiet(h, page, now);
                }
                page = next;
            }
        }
        purge(h, now, true)
    }
}
