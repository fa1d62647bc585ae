//! Strict mode (`MAPALLOC_STRICT=1`, or the `strict` cargo feature for the Rust face): the
//! hardening that costs time, layered over the default allocator through a few hooks
//! (`alloc` dispatches here; `heap` calls in for strict mode's free lists and quarantine;
//! `segment` lays the tail guards it asks for through `heap`, and `large` needs nothing of it:
//! its blocks end at their guard and are `PROT_NONE` while cached in every mode).
//! The mode is fixed at the first allocation (`config::fix_strict`).
//!
//! | property | how |
//! |---|---|
//! | random allocation order | fresh blocks enter a page's free list in shuffled batches |
//! | encoded free lists | a link is stored as `next ^ secret ^ (address >> 4)` and checked: when popped it must be null or a block start inside the page's carved part, and the block it names must still be free when it is handed out, else `mapalloc: corrupted free list in page at 0x...`; other threads' frees reach the owner with their links already encoded |
//! | delayed reuse | a freed block waits in its heap's quarantine before it returns to a free list: a block of up to [`QUARANTINE_SMALL`] bytes until [`QUARANTINE_BLOCKS`] more such blocks were freed (a ring), a bigger one in a FIFO of at most [`QUARANTINE_BIG_BLOCKS`] blocks and [`QUARANTINE_BYTES`]; its live bit is cleared at once, so a second free is still a double free |
//! | zero on free | a freed block of up to [`ZERO_LIMIT`] bytes is cleared whole; a bigger one (large blocks too), its first `ZERO_LIMIT` bytes and its canary (unless `MAPALLOC_STRICT_ZERO=0`, `config::strict_zero`) (a freed large block is `PROT_NONE` while it waits in the large-block cache, in every mode) |
//! | canary | every block gets at least one byte of slack; the slack starts with up to [`CANARY_SPAN`] pattern bytes and ends with a tag that encodes the requested size; `free` checks both: `mapalloc: heap overflow past the end of the block at 0x...` |
//! | guard pages | the last OS page of every page of a segment is `PROT_NONE`, laid out once per segment (and again only if a reused segment changes kind), within a process-wide budget of 8,192 guards (`TAIL_GUARD_BUDGET` in `segment/tail_guards.rs`) (the segment layer lays them when `heap` asks for them in strict mode) |
//!
//! A build can switch properties off to measure what each costs (`MAPALLOC_STRICT_OFF` at
//! compile time, see `OFF` below); a build without that variable has every property.
//!
//! The secret comes from `getrandom(2)` (`os::random_u64`) on first use. The canary pattern
//! of a block is derived from the secret and the block's address.
//!
//! **Slack and tag.** A request of `n` bytes takes the class of `n + 1` (large blocks: `n + 1`
//! bytes), so the slack `s = block size - n` is at least 1. The last byte of the block holds
//! `s` (1..=254) masked with the pattern; for `s >= 255` it holds 255 and the eight bytes
//! before it hold `s`, masked. The pattern bytes follow the requested bytes up to the tag or
//! [`CANARY_SPAN`] bytes, whichever comes first: a linear overflow hits them first, and the
//! checks cost the same for every block size. `malloc_usable_size` reports `n`.
//!
//! **Remote frees** are checked and zeroed by the freeing thread and pushed on the owner's
//! remote-free list as in the default mode (the list delays their reuse until the owner runs
//! out of blocks in that page); only the owner clears live bits, so a double free across
//! threads is caught when the owner collects the list.
//!
//! # Files
//! This file holds the switches, the secret, the per-heap state and the entry points from
//! `alloc`; `canary.rs` the slack canary and the clearing of freed blocks, `free_list.rs` the
//! encoded free lists and remote frees, `quarantine.rs` the quarantine ring and the big-block
//! FIFO, `guards.rs` the per-page tail guards.

use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::heap::{self, DONE, Heap};
use crate::remote::{self, Block};
use crate::segment::{self, Page, Segment};
use crate::size_class::{self, LARGE_FROM, MAX_CLASS_SIZE, MAX_MEDIUM_SIZE, MIN_ALIGN};

/// Requests below this take a size-class block (the class of `n + 1`, which must exist): the
/// same requests as in the default mode (a request of 64 KiB takes the 72 KiB class, which
/// the medium kind serves for that, see `segment::MEDIUM_KIND_MAX`).
const CLASS_BELOW: usize = if LARGE_FROM < MAX_CLASS_SIZE {
    LARGE_FROM
} else {
    MAX_CLASS_SIZE
};
const _: () = assert!(cfg!(feature = "unhardened") || CLASS_BELOW <= segment::MEDIUM_KIND_MAX);
use crate::{config, large, os};

mod canary;
mod free_list;
mod quarantine;

use canary::*;
pub use free_list::*;
pub use quarantine::*;

/// Blocks of up to [`QUARANTINE_SMALL`] bytes a heap's quarantine holds: the last this many
/// such frees (at most 1 MiB).
pub const QUARANTINE_BLOCKS: usize = 256;
/// Blocks up to this size go through the quarantine's ring of [`QUARANTINE_BLOCKS`] slots.
pub const QUARANTINE_SMALL: usize = 4096;
/// Bigger blocks wait in a second FIFO of at most [`QUARANTINE_BIG_BLOCKS`] blocks and this
/// many bytes (block sizes).
pub const QUARANTINE_BYTES: usize = 1 << 20;
/// See [`QUARANTINE_BYTES`].
pub const QUARANTINE_BIG_BLOCKS: usize = 64;
const _: () =
    assert!(QUARANTINE_BLOCKS.is_power_of_two() && QUARANTINE_BIG_BLOCKS.is_power_of_two());
/// Pattern bytes written after the requested bytes (at most; fewer when the slack is short).
pub const CANARY_SPAN: usize = 16;
/// Size-class blocks up to this size are cleared whole when freed; of bigger ones, the first
/// `ZERO_LIMIT` bytes and the canary. Clearing every byte of big blocks cost 7x on the
/// `mixed` workload, whose blocks up to 64 KiB are written one byte per 4 KiB; purging them
/// (`MADV_DONTNEED`) cost more still (a syscall and a fault per page on reuse).
pub const ZERO_LIMIT: usize = 4096;
/// Most blocks shuffled into a free list at once (a power of two).
const SHUFFLE_MAX: usize = 256;
const _: () = assert!(SHUFFLE_MAX.is_power_of_two());

// ---------------------------------------------------------------------------------------------
// Measurement switches

/// Properties switched off at build time, to measure what each costs: a comma-separated list
/// in the build's environment variable `MAPALLOC_STRICT_OFF`, of `zero` (no clearing on
/// free), `canary` (no canary or tag is written or checked; a block counts as requested up
/// to its last byte), `quarantine` (freed blocks go straight back to their page), `shuffle`
/// (fresh blocks in address order). Like the `unhardened` feature it
/// exists only for measurements (`benches/README.md`): such a build catches less and fails
/// the strict tests. Unset, every switch below is false and its branches compile away; an
/// unknown word fails the build.
const OFF: &str = match option_env!("MAPALLOC_STRICT_OFF") {
    Some(s) => s,
    None => "",
};
/// The words `MAPALLOC_STRICT_OFF` accepts.
const OFF_WORDS: [&str; 4] = ["zero", "canary", "quarantine", "shuffle"];
const NO_ZERO: bool = off(OFF, OFF_WORDS[0]);
const NO_CANARY: bool = off(OFF, OFF_WORDS[1]);
const NO_QUARANTINE: bool = off(OFF, OFF_WORDS[2]);
const NO_SHUFFLE: bool = off(OFF, OFF_WORDS[3]);
const _: () = assert!(
    off_words_known(OFF),
    "MAPALLOC_STRICT_OFF: use zero, canary, quarantine, shuffle"
);

/// The `i`th comma-separated item of `list` as a byte range, or `None` past the last.
const fn item(list: &[u8], i: usize) -> Option<(usize, usize)> {
    let (mut start, mut k, mut at) = (0, 0, 0);
    while at <= list.len() {
        if at == list.len() || list[at] == b',' {
            if k == i {
                return Some((start, at));
            }
            k += 1;
            start = at + 1;
        }
        at += 1;
    }
    None
}

/// Whether bytes `[a, b)` of `list` spell `word`.
const fn spells(list: &[u8], (a, b): (usize, usize), word: &str) -> bool {
    let w = word.as_bytes();
    if b - a != w.len() {
        return false;
    }
    let mut i = 0;
    while i < w.len() {
        if list[a + i] != w[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `word` is an item of the comma-separated `list`.
const fn off(list: &str, word: &str) -> bool {
    let mut i = 0;
    while let Some(r) = item(list.as_bytes(), i) {
        if spells(list.as_bytes(), r, word) {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether every item of `list` is one of [`OFF_WORDS`] (an empty list is fine).
const fn off_words_known(list: &str) -> bool {
    if list.is_empty() {
        return true;
    }
    let mut i = 0;
    while let Some(r) = item(list.as_bytes(), i) {
        let mut k = 0;
        let mut known = false;
        while k < OFF_WORDS.len() {
            known |= spells(list.as_bytes(), r, OFF_WORDS[k]);
            k += 1;
        }
        if !known {
            return false;
        }
        i += 1;
    }
    true
}

// ---------------------------------------------------------------------------------------------
// The secret

static SECRET: AtomicU64 = AtomicU64::new(0);

/// The per-process secret. It is set by [`init`] before `config::strict` first answers
/// true (the mode is published with release order and read with acquire order), so no strict
/// path sees it unset, and it never changes afterwards (a change would make every encoded
/// link and canary look corrupt).
#[inline(always)]
fn secret() -> u64 {
    SECRET.load(Relaxed)
}

/// Set strict mode up before it is published: the secret, and the large-block layer's reuse
/// delay (the address just freed does not come back for the next large requests either).
pub fn init() {
    init_secret();
    large::delay_reuse(large::STRICT_REUSE_DELAY);
}

/// Draw the secret once (`getrandom(2)`); later calls keep it.
fn init_secret() {
    if SECRET.load(Relaxed) != 0 {
        return;
    }
    let v = os::random_u64() | 1;
    // The first drawer wins; a racing thread's draw is dropped.
    let _ = SECRET.compare_exchange(0, v, Relaxed, Relaxed);
}

/// The canary key of the block at `p`: secret and address mixed.
#[inline(always)]
fn block_key(p: usize) -> u64 {
    secret() ^ (p as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Pattern byte at offset `o` of a block with key `key`.
#[inline(always)]
fn pattern(key: u64, o: usize) -> u8 {
    (key >> ((o & 7) * 8)) as u8
}

// ---------------------------------------------------------------------------------------------
// Per-heap state

/// A heap's strict-mode state, mapped on first use and kept as long as the heap (for ever).
#[repr(C)]
pub struct HeapState {
    /// Quarantined blocks of up to [`QUARANTINE_SMALL`] bytes and their pages (kept so that a
    /// block leaves without a lookup through its segment's header): a ring that is full once
    /// it has wrapped, so a free puts its block at `pos` and releases the one it replaces
    /// (0: none yet).
    ring: [usize; QUARANTINE_BLOCKS],
    pages: [*mut Page; QUARANTINE_BLOCKS],
    pos: usize,
    /// Bigger blocks: a FIFO, oldest at `big_head`, bounded by count and bytes.
    big: [usize; QUARANTINE_BIG_BLOCKS],
    big_pages: [*mut Page; QUARANTINE_BIG_BLOCKS],
    big_head: usize,
    big_len: usize,
    big_bytes: usize,
    /// xorshift64* state for shuffling.
    rng: u64,
}

impl HeapState {
    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The strict state of `h`, mapped on first use; null when out of memory (the heap then works
/// without quarantine and shuffles with a fixed generator).
///
/// # Safety
/// `h` is owned by the calling thread (or locked by it).
#[inline(always)]
unsafe fn state(h: *mut Heap) -> *mut HeapState {
    // SAFETY: per the contract.
    let st = unsafe { (*h).strict };
    if !st.is_null() {
        return st;
    }
    // SAFETY: per the contract.
    unsafe { new_state(h) }
}

/// # Safety
/// As for [`state`].
#[cold]
unsafe fn new_state(h: *mut Heap) -> *mut HeapState {
    // SAFETY: per the contract.
    unsafe {
        let Some(len) = os::page_round_up(core::mem::size_of::<HeapState>()) else {
            return ptr::null_mut();
        };
        let st = os::map(len, true) as *mut HeapState;
        if !st.is_null() {
            // Fresh zeroed memory is an empty quarantine; seed the generator.
            (*st).rng = (secret() ^ (h as u64).rotate_left(32)) | 1;
            (*h).strict = st;
        }
        st
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points (from `alloc`)

/// A block of class `cls` with `n` requested bytes (`n < ` the class size), canary written.
#[inline]
fn alloc_class(cls: usize, n: usize) -> *mut u8 {
    let h = heap::tls_heap();
    let mut b = ptr::null_mut();
    if h as usize > DONE as usize {
        // SAFETY: a pointer above DONE in our TLS is this thread's own heap.
        unsafe {
            let page = heap::first_page(h, cls);
            if !page.is_null() {
                b = take(h, page);
            }
        }
    }
    if b.is_null() {
        b = heap::alloc(cls);
        if b.is_null() {
            // No segment can be had (see `heap::large_fallback`): a large block of its own,
            // with the class's alignment and strict mode's large-block canary.
            return alloc_large(n, size_class::class_align(cls), false);
        }
    }
    // SAFETY: a fresh block of the class's size.
    unsafe { write_canary_fresh(b, size_class::class_size(cls), n) };
    b
}

/// A large block of `size` bytes, canary written. A large block needs no slack of its own:
/// its end touches its trailing guard, and the large-block table keeps its requested size, so
/// its canary is only the pattern over the (at most 15, or the alignment's) bytes between the
/// request and the end, up to [`CANARY_SPAN`] of them, and no tag. A request that is a
/// multiple of the page size so keeps its start on a page boundary, against its front guard.
fn alloc_large(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    let p = crate::alloc::large_alloc(size, align, zeroed);
    if p.is_null() {
        return p;
    }
    let (usable, n) = large::sizes(p).unwrap_or_else(|| os::internal("strict large block"));
    // SAFETY: a fresh large block of `usable` bytes.
    unsafe { large_canary_write(p, usable, n) };
    p
}

/// The offsets a large block's canary covers (see [`alloc_large`]).
fn large_span(usable: usize, n: usize) -> (usize, usize) {
    (n, usable.min(n + CANARY_SPAN))
}

/// Write the canary of the large block at `p` of `usable` bytes with `n` requested.
///
/// # Safety
/// `p` is a live large block of `usable` bytes that the caller owns.
unsafe fn large_canary_write(p: *mut u8, usable: usize, n: usize) {
    if !NO_CANARY {
        let (a, b) = large_span(usable, n);
        // SAFETY: within the block.
        unsafe { span_write(p, block_key(p as usize), a, b) };
    }
}

/// The requested size of the live large block at `p` (`None` when it is not one), its
/// canary checked: an overflow aborts.
///
/// # Safety
/// `p` is non-null.
unsafe fn large_info(p: *const u8) -> Option<(usize, usize)> {
    let (usable, n) = large::sizes(p)?;
    let (a, b) = large_span(usable, n);
    // SAFETY: a live large block of `usable` bytes.
    if !NO_CANARY && !unsafe { span_ok(p, block_key(p as usize), a, b) } {
        overflow(p as usize);
    }
    Some((usable, n))
}

/// `alloc::malloc` in strict mode.
#[inline(never)]
pub fn malloc(size: usize) -> *mut u8 {
    if size == 0 {
        // An inaccessible slot, as in the default mode (see `zero`).
        return crate::alloc::zero_size(MIN_ALIGN);
    }
    if size < CLASS_BELOW {
        alloc_class(size_class::class_of(size + 1), size)
    } else {
        alloc_large(size, 0, false)
    }
}

/// `alloc::malloc_aligned` in strict mode.
#[inline(never)]
pub fn malloc_aligned(size: usize, align: usize) -> *mut u8 {
    if align <= MIN_ALIGN {
        return malloc(size);
    }
    if align <= MAX_MEDIUM_SIZE && size < CLASS_BELOW {
        if let Some(c) = size_class::class_for_aligned(size + 1, align) {
            return alloc_class(c, size);
        }
    }
    alloc_large(size, align, false)
}

/// `alloc::malloc_zeroed` in strict mode.
pub fn malloc_zeroed(size: usize, align: usize) -> *mut u8 {
    if size >= CLASS_BELOW || align > MAX_MEDIUM_SIZE {
        return alloc_large(size, align, true);
    }
    let p = malloc_aligned(size, align);
    if !p.is_null() {
        // SAFETY: `p` is a fresh block of at least `size` bytes.
        unsafe { ptr::write_bytes(p, 0, size) };
    }
    p
}

/// `alloc::free` in strict mode.
///
/// # Safety
/// As for `alloc::free`.
#[inline(never)]
pub unsafe fn free(p: *mut u8, size: usize) {
    if p.is_null() {
        return;
    }
    match segment::segment_of(p as usize) {
        // SAFETY: `seg` contains `p`.
        Some(seg) => unsafe { free_class(seg, p, size) },
        None if crate::zero::contains(p) => crate::zero::free(p, size),
        None => free_large(p, size),
    }
}

#[cold]
fn sized_too_large(p: usize) -> ! {
    os::fatal_ptr("sized free with a size larger than the block at", p)
}

/// # Safety
/// `seg` is the segment of ours that contains `p`.
#[inline(always)]
unsafe fn free_class(seg: *mut Segment, p: *mut u8, size: usize) {
    // SAFETY: `seg` is a mapped segment of ours; its bitmap decides whether `p` is live.
    unsafe {
        let s = &*seg;
        let (w, bit) = s.bit(p as usize);
        let v = w.load(Relaxed);
        if v & bit == 0 || (p as usize) & 15 != 0 {
            heap::bad_free(s, p as usize);
        }
        let page = s.pages.as_ptr().add(s.page_index(p as usize)) as *mut Page;
        let bs = (*page).block_size as usize;
        let Some(n) = read_canary(p, bs) else {
            overflow(p as usize)
        };
        if size > n {
            sized_too_large(p as usize);
        }
        clear(p, bs, n);
        let h = heap::tls_heap();
        if (*page).heap.load(Relaxed) != h.cast() {
            // Its link is stored encoded, as on a free list: the owner splices the list whole.
            heap::free_remote_encoded(h, page, p as *mut Block, encode(p as usize, 0));
            return;
        }
        // Freed from now on: a second free finds the bit clear.
        w.store(v & !bit, Relaxed);
        heap::bump(&(*h).frees[heap::slot((*page).class as usize)], 1);
        quarantine(h, page, p as usize, bs);
    }
}

#[cold]
#[inline(never)]
fn free_large(p: *mut u8, size: usize) {
    // SAFETY: `p` is non-null.
    let Some((usable, n)) = (unsafe { large_info(p) }) else {
        // Not a live large block: `large::free` reports it (invalid or double free).
        crate::alloc::large_free(p, size);
        return;
    };
    if size > n {
        sized_too_large(p as usize);
    }
    // Cleared as a big size-class block is (its first ZERO_LIMIT bytes and the canary; not
    // with MAPALLOC_STRICT_ZERO=0), so that a reuse does not hand them to the next owner.
    // (`large` then closes its pages while it waits in the cache, as in the default mode.)
    if zeroing() {
        let (a, b) = large_span(usable, n);
        // SAFETY: the caller gives the whole block up; both ranges lie in it.
        unsafe {
            ptr::write_bytes(p, 0, n.min(ZERO_LIMIT));
            ptr::write_bytes(p.add(a), 0, b - a);
        }
    }
    crate::alloc::large_free(p, 0);
}

/// The block size and requested size of the live block at `p`, and whether it is a
/// size-class block; `None` when `p` is not a live block of ours.
///
/// # Safety
/// `p` is non-null.
unsafe fn info(p: *const u8) -> Option<(usize, usize, bool)> {
    let (bs, class) = match segment::segment_of(p as usize) {
        Some(seg) => {
            // SAFETY: `seg` contains `p`.
            (unsafe { heap::usable_size(seg, p as *mut u8) }?, true)
        }
        // SAFETY: forwarded contract.
        None => return unsafe { large_info(p) }.map(|(bs, n)| (bs, n, false)),
    };
    // SAFETY: a live block of `bs` bytes.
    match unsafe { read_canary(p, bs) } {
        Some(n) => Some((bs, n, class)),
        None => overflow(p as usize),
    }
}

/// The size the live block at `p` was requested with (its canary is checked on the way),
/// `None` when `p` is not a live block of ours.
///
/// # Safety
/// `p` is non-null.
pub unsafe fn requested_size(p: *const u8) -> Option<usize> {
    // SAFETY: forwarded contract.
    unsafe { info(p) }.map(|(_, n, _)| n)
}

/// `alloc::usable_size` in strict mode: the requested size (the slack holds the canary).
///
/// # Safety
/// `p` is a non-null pointer this allocator returned.
pub unsafe fn usable_size(p: *const u8) -> usize {
    // SAFETY: forwarded contract.
    match unsafe { info(p) } {
        Some((_, n, _)) => n,
        None => crate::alloc::misuse(
            "malloc_usable_size of freed pointer",
            "malloc_usable_size of invalid pointer",
            p as usize,
        ),
    }
}

/// `alloc::realloc` in strict mode.
///
/// # Safety
/// As for `alloc::realloc`.
pub unsafe fn realloc(p: *mut u8, size: usize, align: usize) -> *mut u8 {
    // SAFETY: `p` is non-null per the contract.
    let Some((bs, n, class)) = (unsafe { info(p) }) else {
        crate::alloc::misuse(
            "realloc of freed pointer",
            "realloc of invalid pointer",
            p as usize,
        );
    };
    if class {
        // In place while the request still fits the class with a canary byte and does not
        // waste over half of it.
        if size < bs && (size + 1 >= bs / 2 || bs <= 2 * MIN_ALIGN) {
            // SAFETY: the caller's live block of `bs` bytes.
            unsafe {
                clear_slack(p, bs, n);
                // Dropped bytes are cleared as a free would (up to ZERO_LIMIT).
                let keep = n.min(ZERO_LIMIT);
                if size < keep {
                    ptr::write_bytes(p.add(size), 0, keep - size);
                }
                write_canary(p, bs, size);
            }
            return p;
        }
    } else if size >= CLASS_BELOW && (p as usize) % align == 0 {
        let q = large::resize(p, size, align);
        if !q.is_null() {
            let (usable, _) = large::sizes(q).unwrap_or_else(|| os::internal("strict realloc"));
            // SAFETY: the block at `q` is live with `usable` bytes, the old block's bytes
            // moved with it (at the same offsets, up to the smaller size); the old canary is
            // cleared where it is data now, the new one written.
            unsafe {
                let (a, b) = large_span(bs, n);
                let b = b.min(size).min(usable);
                if b > a {
                    ptr::write_bytes(q.add(a), 0, b - a);
                }
                large_canary_write(q, usable, size);
            }
            return q;
        }
    }
    let q = malloc_aligned(size, align);
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live, distinct, and at least min(size, n) bytes long.
    unsafe {
        ptr::copy_nonoverlapping(p, q, size.min(n));
        free(p, 0);
    }
    q
}

/// Zero the canary and tag of a block (before writing them for a new size, or on free).
///
/// # Safety
/// `p` is a block of ours of `bs` bytes with `n` requested bytes that the caller owns.
unsafe fn clear_slack(p: *mut u8, bs: usize, n: usize) {
    let tl = tag_len(bs - n);
    let end = (n + CANARY_SPAN).min(bs);
    // SAFETY: per the contract, all within the block.
    unsafe {
        ptr::write_bytes(p.add(n), 0, end - n);
        ptr::write_bytes(p.add(bs - tl), 0, tl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_switch_words() {
        assert!(off("zero,canary", "canary") && off("zero", "zero"));
        assert!(!off("zeros", "zero") && !off("", "zero") && !off("canary", "zero"));
        assert!(off_words_known("") && off_words_known("shuffle,quarantine"));
        assert!(!off_words_known("zero,") && !off_words_known("fast"));
    }

    #[test]
    fn canary_round_trip() {
        // 16-byte aligned, as every block is (`clear` stores 16 bytes at a time).
        #[repr(align(16))]
        struct Buf([u8; 1024]);
        let mut buf = Buf([0; 1024]);
        let p = buf.0.as_mut_ptr();
        // Under Miri (CI), a few sizes and every third request: the full walk takes minutes.
        let (sizes, step): (&[usize], usize) = if cfg!(miri) {
            (&[16, 48, 272], 2)
        } else {
            (&[16, 32, 48, 64, 192, 256, 272, 512, 1024], 1)
        };
        for &bs in sizes {
            for n in (0..bs).step_by(step) {
                for fresh in [false, true] {
                    // SAFETY: the buffer holds 1024 bytes.
                    unsafe {
                        ptr::write_bytes(p, 0xAB, bs);
                        if fresh {
                            write_canary_fresh(p, bs, n);
                        } else {
                            write_canary(p, bs, n);
                            // The precise writer leaves the requested bytes alone.
                            assert!((0..n).all(|i| *p.add(i) == 0xAB), "bs {bs} n {n}");
                        }
                        assert_eq!(read_canary(p, bs), Some(n), "bs {bs} n {n}");
                        // Every byte of the requested part may change.
                        if n > 0 {
                            *p.add(n - 1) ^= 0xFF;
                            assert_eq!(read_canary(p, bs), Some(n), "data bs {bs} n {n}");
                        }
                        if n < bs - 1 {
                            *p.add(n) ^= 0xFF;
                            assert_eq!(read_canary(p, bs), None, "overflow bs {bs} n {n}");
                            *p.add(n) ^= 0xFF;
                        }
                        // The tag is checked too.
                        *p.add(bs - 1) ^= 0x40;
                        assert_ne!(read_canary(p, bs), Some(n), "tag bs {bs} n {n}");
                        *p.add(bs - 1) ^= 0x40;
                        // Clearing leaves the block's requested bytes and slack zero.
                        clear(p, bs, n);
                        assert!((0..n.min(ZERO_LIMIT)).all(|i| *p.add(i) == 0));
                        assert!((n..(n + CANARY_SPAN).min(bs)).all(|i| *p.add(i) == 0));
                        assert_eq!(*p.add(bs - 1), 0, "tag cleared bs {bs} n {n}");
                        if bs <= ZERO_LIMIT {
                            assert!((0..bs).all(|i| *p.add(i) == 0), "whole bs {bs} n {n}");
                        }
                    }
                }
            }
        }
    }
}
