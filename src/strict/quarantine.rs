//! The quarantine, a part of `strict`.

use super::*;

/// Return a quarantined block to its page's free list (a local free); returns its block size.
///
/// # Safety
/// `b` is a block of `page`, which `h` owns, counted in the page's `used`, with its live bit
/// clear, on no list; the calling thread owns `h`.
#[inline(always)]
pub(super) unsafe fn release_block(h: *mut Heap, page: *mut Page, b: usize) -> usize {
    // SAFETY: per the contract.
    unsafe {
        push(page, b);
        (*page).used -= 1;
        let bs = (*page).block_size as usize;
        if (*page).used == 0 || (*page).in_full {
            heap::free_slow(h, page);
        }
        bs
    }
}

/// Take the oldest block out of the quarantine's FIFO of big blocks and return it to its
/// page.
///
/// # Safety
/// `q` is `h`'s quarantine, its big FIFO not empty; the calling thread owns `h`.
pub(super) unsafe fn evict_big(h: *mut Heap, q: &mut HeapState) {
    const MASK: usize = QUARANTINE_BIG_BLOCKS - 1;
    let i = q.big_head & MASK;
    let (old, page) = (q.big[i], q.big_pages[i]);
    q.big_head = (i + 1) & MASK;
    q.big_len -= 1;
    // SAFETY: per the contract, a quarantined block of `h`'s.
    q.big_bytes -= unsafe { release_block(h, page, old) };
}

/// Quarantine the block `b` of `page`, `bs` bytes, freed by the owner of its page; the block
/// it displaces (the oldest) returns to its page.
///
/// # Safety
/// As for [`release_block`].
#[inline(always)]
pub(super) unsafe fn quarantine(h: *mut Heap, page: *mut Page, b: usize, bs: usize) {
    const MASK: usize = QUARANTINE_BLOCKS - 1;
    // SAFETY: per the contract; the state is `h`'s own.
    unsafe {
        let st = state(h);
        if st.is_null() || NO_QUARANTINE {
            release_block(h, page, b);
            return;
        }
        let q = &mut *st;
        if bs > QUARANTINE_SMALL {
            quarantine_big(h, q, page, b, bs);
            return;
        }
        let i = q.pos & MASK;
        let (old, old_page) = (q.ring[i], q.pages[i]);
        q.ring[i] = b;
        q.pages[i] = page;
        q.pos = (i + 1) & MASK;
        // The blocks leave in order and were last touched long ago: start loading the one
        // that leaves a few frees from now (its link is written then), and its page's
        // descriptor.
        os::prefetch(q.ring[(i + 8) & MASK] as *const u8);
        os::prefetch(q.pages[(i + 8) & MASK] as *const u8);
        if old != 0 {
            release_block(h, old_page, old);
        }
    }
}

/// [`quarantine`] for a block of more than [`QUARANTINE_SMALL`] bytes: the oldest big blocks
/// leave to keep the FIFO within its bounds.
///
/// # Safety
/// As for [`release_block`]; `q` is `h`'s quarantine.
#[inline(never)]
pub(super) unsafe fn quarantine_big(
    h: *mut Heap,
    q: &mut HeapState,
    page: *mut Page,
    b: usize,
    bs: usize,
) {
    // SAFETY: per the contract.
    unsafe {
        while q.big_len == QUARANTINE_BIG_BLOCKS
            || (q.big_len > 0 && q.big_bytes + bs > QUARANTINE_BYTES)
        {
            evict_big(h, q);
        }
    }
    let i = (q.big_head + q.big_len) & (QUARANTINE_BIG_BLOCKS - 1);
    q.big[i] = b;
    q.big_pages[i] = page;
    q.big_len += 1;
    q.big_bytes += bs;
}

/// Empty `h`'s quarantine into the free lists (before `malloc_trim` purges).
///
/// # Safety
/// `h` is owned by the calling thread, or locked by it, or abandoned and held under the heap
/// pool's lock.
pub unsafe fn flush_quarantine(h: *mut Heap) {
    // SAFETY: per the contract.
    unsafe {
        let st = (*h).strict;
        if st.is_null() {
            return;
        }
        let q = &mut *st;
        for i in 0..QUARANTINE_BLOCKS {
            let b = core::mem::replace(&mut q.ring[i], 0);
            if b != 0 {
                release_block(h, q.pages[i], b);
            }
        }
        while q.big_len > 0 {
            evict_big(h, q);
        }
    }
}
