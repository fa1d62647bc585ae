//! Encoded free lists, a part of `strict`.

use super::*;

#[inline(always)]
pub(super) fn encode(at: usize, next: usize) -> usize {
    next ^ secret() as usize ^ (at >> 4)
}

#[cold]
#[inline(never)]
pub(super) fn corrupted(page: &Page) -> ! {
    os::fatal_ptr("corrupted free list in page at", page.start as usize)
}

/// Pop the first block of a page's strict free list, checking the link it holds; null when
/// the list is empty. Clears the link word.
///
/// # Safety
/// The calling thread owns the page.
#[inline(always)]
pub(super) unsafe fn pop(page: *mut Page) -> *mut u8 {
    // SAFETY: the caller owns the page; blocks on its list are its free blocks.
    unsafe {
        let p = &mut *page;
        let b = p.strict_free as usize;
        if b == 0 {
            return ptr::null_mut();
        }
        let next = encode(b, (b as *const usize).read());
        if next != 0 {
            // Inside the page's carved blocks, so the next pop may read it; that it is free
            // is checked when it is taken (`take`), with the live-bit update it needs anyway.
            let start = p.start as usize;
            let end = start + p.built as usize * p.block_size as usize;
            if next < start || next >= end || next & 15 != 0 {
                corrupted(p);
            }
        }
        p.strict_free = next as *mut Block;
        (b as *mut usize).write(0);
        // The free list runs in random order and through the quarantine, so the next block
        // is rarely in cache: start loading it now.
        if next != 0 {
            os::prefetch(next as *const u8);
        }
        b as *mut u8
    }
}

/// Push the free block `b` on its page's strict free list.
///
/// # Safety
/// The calling thread owns the page; `b` is a block of it that is free and on no list.
#[inline(always)]
pub(super) unsafe fn push(page: *mut Page, b: usize) {
    // SAFETY: per the contract.
    unsafe {
        (b as *mut usize).write(encode(b, (*page).strict_free as usize));
        (*page).strict_free = b as *mut Block;
    }
}

/// Take a block of `page` for `h` (the slow path of `heap::alloc_slow`): collect remote frees
/// and carve fresh blocks when the free list is empty. Null when the page has no free block.
///
/// # Safety
/// The calling thread owns `h` and the page, which is in `h`'s queue.
pub unsafe fn page_alloc(h: *mut Heap, page: *mut Page) -> *mut u8 {
    // SAFETY: per the contract.
    unsafe {
        if (*page).strict_free.is_null() {
            collect(page);
        }
        if (*page).strict_free.is_null() && (*page).built < (*page).capacity {
            extend(h, page);
        }
        take(h, page)
    }
}

/// Bytes after a free block's link word, up to the end of its first 64 bytes, that stay zero
/// while it waits on a free list: the free cleared them (`clear`) and carving clears them
/// (`extend`). A write after free there is caught when the block is handed out again.
#[inline(always)]
fn fill_words(bs: usize) -> usize {
    bs.min(64) / 8
}

/// Whether the words `1..fill_words(bs)` of the free block at `b` are still zero.
///
/// # Safety
/// `b` is a free block of `bs` bytes of a page the caller owns.
#[inline(always)]
unsafe fn fill_intact(b: usize, bs: usize) -> bool {
    let w = b as *const u64;
    let mut acc = 0;
    for i in 1..fill_words(bs) {
        // SAFETY: within the block's first 64 bytes.
        acc |= unsafe { w.add(i).read() };
    }
    acc == 0
}

#[cold]
#[inline(never)]
fn written_after_free(b: usize) -> ! {
    os::fatal_ptr("write after free of", b)
}

/// Pop a block of `page` and count it as handed out; null when the list is empty. In strict
/// mode with zeroing, a block whose cleared bytes (see [`fill_words`]) were written while it
/// was free aborts: `mapalloc: write after free of 0x...`.
///
/// # Safety
/// As for [`page_alloc`].
#[inline(always)]
pub(super) unsafe fn take(h: *mut Heap, page: *mut Page) -> *mut u8 {
    // SAFETY: per the contract.
    unsafe {
        let b = pop(page);
        if !b.is_null() {
            (*page).used += 1;
            // A block on the free list must be free: a live one there means a link was
            // overwritten (a use after free) to hand out a block twice.
            let seg = &*((b as usize & !segment::SEGMENT_MASK) as *const Segment);
            let (w, bit) = seg.bit(b as usize);
            let v = w.load(Relaxed);
            if v & bit != 0 {
                corrupted(&*page);
            }
            if zeroing() && !fill_intact(b as usize, (*page).block_size as usize) {
                written_after_free(b as usize);
            }
            w.store(v | bit, Relaxed);
            heap::bump(&(*h).allocs[heap::slot((*page).class as usize)], 1);
        }
        b
    }
}

/// Carve the next blocks of a page's untouched memory into its free list, in random order.
///
/// # Safety
/// The calling thread owns `h` and the page.
pub(super) unsafe fn extend(h: *mut Heap, page: *mut Page) {
    // SAFETY: per the contract; blocks [built, capacity) are unused page memory.
    unsafe {
        let st = state(h);
        let p = &mut *page;
        let bs = p.block_size as usize;
        let want = 4096usize
            .checked_div(bs)
            .unwrap_or(1)
            .clamp(16, SHUFFLE_MAX);
        let n = want.min((p.capacity - p.built) as usize);
        let mut idx = [0u16; SHUFFLE_MAX];
        for (i, v) in idx.iter_mut().enumerate().take(n) {
            *v = i as u16;
        }
        let mut rng = if st.is_null() {
            secret() ^ page as u64
        } else {
            (*st).next()
        } | 1;
        let shuffled = if NO_SHUFFLE { 1 } else { n };
        for i in (1..shuffled).rev() {
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            // A uniform index in 0..=i from the high 32 bits, by multiplication (Lemire):
            // a division per block would cost more than the rest of the allocation.
            let r = rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
            let j = ((r * (i as u64 + 1)) >> 32) as usize;
            // The masks keep both indices in the array (n <= SHUFFLE_MAX, a power of two).
            idx.swap(i & (SHUFFLE_MAX - 1), j & (SHUFFLE_MAX - 1));
        }
        if p.built == 0 {
            // A fresh page hands out its lowest block first, as the default mode does: it sits
            // right above a guard (the segment's metadata guard, or the previous page's tail
            // guard), so an underflow of it faults in strict mode too. The rest stay shuffled.
            if let Some(at) = idx.iter().take(n).position(|&k| k == 0) {
                // The mask keeps the index in the array (no bounds check, no panic path).
                idx.swap(0, at & (SHUFFLE_MAX - 1));
            }
        }
        let base = p.start as usize + p.built as usize * bs;
        let clear_fill = zeroing();
        for &k in idx.get(..n).unwrap_or(&[]).iter().rev() {
            let b = base + k as usize * bs;
            if clear_fill {
                // The page may have held another class's blocks: what `take` checks starts
                // zero (the rest of a fresh page is zero already, or was cleared by frees).
                for i in 1..fill_words(bs) {
                    (b as *mut u64).add(i).write(0);
                }
            }
            push(page, b);
        }
        p.built += n as u32;
    }
}

/// Move the blocks other threads freed into the page's strict free list (the hook of
/// `heap::collect`). Each must still be live (its bit is cleared here), and the list may not
/// be longer than the blocks in use. Remote freers store the links encoded
/// (`heap::free_remote_encoded`), so the list is checked by reading it and spliced whole: only
/// its last block is written.
///
/// # Safety
/// The calling thread owns the page (or its heap's lock).
pub unsafe fn collect(page: *mut Page) {
    // SAFETY: the caller owns the page; the swap gives it the whole remote list.
    unsafe {
        let p = &mut *page;
        let head = remote::take_blocks(&p.thread_free).0 as usize;
        if head == 0 {
            return;
        }
        let seg = &*segment::segment_of_page(page);
        let start = p.start as usize;
        let end = start + p.built as usize * p.block_size as usize;
        let mut b = head;
        let mut tail = head;
        let mut count = 0u32;
        while b != 0 {
            count += 1;
            if count > p.used || b < start || b >= end || b & 15 != 0 {
                os::fatal_ptr(
                    "heap corruption: remote free list broken in page at",
                    p.start as usize,
                );
            }
            let (w, bit) = seg.bit(b);
            let v = w.load(Relaxed);
            if v & bit == 0 {
                os::fatal_ptr("double free of", b);
            }
            w.store(v & !bit, Relaxed);
            tail = b;
            b = encode(b, (b as *const usize).read());
        }
        (tail as *mut usize).write(encode(tail, p.strict_free as usize));
        p.strict_free = head as *mut Block;
        p.used -= count;
        let h = p.heap.load(Relaxed).cast::<Heap>();
        heap::bump(&(*h).remote_in[heap::slot(p.class as usize)], count as u64);
    }
}
