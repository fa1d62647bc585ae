//! Zero-size blocks: what `malloc(0)`, `calloc(n, 0)`, `aligned_alloc(a, 0)` and a C++ `new`
//! of zero bytes return. Each is a unique 16-byte slot in one inaccessible (`PROT_NONE`)
//! reservation, so that any read or write through the pointer faults, while the block lives
//! and after it is freed; `malloc_usable_size` reports 0, and `realloc` from it allocates
//! afresh.
//!
//! Which slots are live is one bit each in a bitmap mapped beside the reservation (atomic
//! operations, no lock). A search for a free slot starts where the last one succeeded and
//! moves on through the bitmap, so a slot just freed is handed out again only after the
//! search has gone round the whole reservation: a stale pointer to a freed zero-size block
//! stays a freed one (its second free is reported as a double free) for a long time.
//!
//! The reservation is mapped on the first zero-size request: 16 MiB of address space, never
//! committed (a `PROT_NONE` mapping costs no memory), and a bitmap of 128 KiB whose pages
//! become resident only as slots are used. When it cannot be mapped, or all 2^20 slots are
//! live, a zero-size request is served as a 1-byte one instead (an ordinary, accessible block
//! whose usable size is its class's).

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use crate::os;

/// Bytes per slot: every block is 16-byte aligned.
const SLOT: usize = 16;
/// Slots in the reservation.
const SLOTS: usize = 1 << 20;
/// Bytes of the reservation.
const BYTES: usize = SLOTS * SLOT;
/// Words of the bitmap.
const WORDS: usize = SLOTS / 64;
/// The largest alignment a slot is searched for (larger ones fall back to a 1-byte block).
pub const MAX_ALIGN: usize = 4096;

const UNMAPPED: u8 = 0;
const MAPPING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNMAPPED);
/// Start of the reservation (0 until it is mapped).
static BASE: AtomicUsize = AtomicUsize::new(0);
static BITS: AtomicPtr<AtomicU64> = AtomicPtr::new(ptr::null_mut());
/// The bitmap word where the next search starts.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Map the reservation and its bitmap once; false when they cannot be mapped.
#[cold]
fn ready_slow() -> bool {
    loop {
        match STATE.compare_exchange(UNMAPPED, MAPPING, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => break,
            Err(READY) => return true,
            Err(FAILED) => return false,
            // Another thread is mapping it: two system calls, then it publishes.
            Err(_) => core::hint::spin_loop(),
        }
    }
    let region = os::map(BYTES, false);
    let bits = os::page_round_up(WORDS * 8).map_or(ptr::null_mut(), |n| os::map(n, true));
    if region.is_null() || bits.is_null() {
        // SAFETY: whichever of the two mappings was made is ours and unused.
        unsafe {
            if !region.is_null() {
                os::release(region, BYTES);
            }
            if let (false, Some(n)) = (bits.is_null(), os::page_round_up(WORDS * 8)) {
                os::release(bits, n);
            }
        }
        STATE.store(FAILED, Ordering::Release);
        return false;
    }
    BITS.store(bits.cast(), Ordering::Relaxed);
    BASE.store(region as usize, Ordering::Relaxed);
    STATE.store(READY, Ordering::Release);
    true
}

#[inline]
fn ready() -> bool {
    STATE.load(Ordering::Acquire) == READY || ready_slow()
}

/// The bitmap word `w` (`w < WORDS`).
fn word(w: usize) -> &'static AtomicU64 {
    debug_assert!(w < WORDS);
    // SAFETY: the bitmap has WORDS words, is mapped for ever once READY (callers check), and
    // is only used through atomics.
    unsafe { &*BITS.load(Ordering::Relaxed).add(w) }
}

/// A fresh zero-size block aligned to `align` (a power of two), or null when none can be had
/// (the caller then serves a 1-byte block).
pub fn alloc(align: usize) -> *mut u8 {
    if align > MAX_ALIGN || !ready() {
        return ptr::null_mut();
    }
    let base = BASE.load(Ordering::Relaxed);
    // Slots whose address is a multiple of `align`: the reservation is page-aligned, so every
    // `step`th slot of each word (`step` <= 64), or the first slot of every `step / 64`th
    // word.
    let step = align.max(SLOT) / SLOT;
    let (mask, word_step) = if step <= 64 {
        let mut m = 0u64;
        let mut b = 0;
        while b < 64 {
            m |= 1 << b;
            b += step;
        }
        (m, 1)
    } else {
        (1u64, step / 64)
    };
    let next = NEXT.load(Ordering::Relaxed) % SLOTS;
    let start = next / 64 / word_step * word_step;
    // The first visit of the start word skips the slots before `next`; the last one (after
    // going round) looks at those only.
    let low = if start == next / 64 { next % 64 } else { 0 };
    let mut w = start;
    let mut wrapped = false;
    loop {
        let part = match (w == start, wrapped) {
            (true, false) => !0u64 << low,
            (true, true) => !(!0u64 << low),
            _ => !0,
        };
        let free = !word(w).load(Ordering::Relaxed) & mask & part;
        if free != 0 {
            let bit = 1u64 << free.trailing_zeros();
            if word(w).fetch_or(bit, Ordering::Acquire) & bit == 0 {
                let slot = w * 64 + bit.trailing_zeros() as usize;
                NEXT.store(slot + 1, Ordering::Relaxed);
                return (base + slot * SLOT) as *mut u8;
            }
            continue; // another thread took it: look at the word again
        }
        if w == start && wrapped {
            return ptr::null_mut(); // every slot is live
        }
        w = (w + word_step) % WORDS;
        if w == start {
            wrapped = true;
        }
    }
}

/// Whether `p` lies in the reservation (a zero-size block of ours, live or freed, or an
/// interior pointer into one).
#[inline]
pub fn contains(p: *const u8) -> bool {
    let base = BASE.load(Ordering::Relaxed);
    base != 0 && (p as usize).wrapping_sub(base) < BYTES
}

/// The bitmap word and bit of `p` (inside the reservation), or `None` when `p` is not the
/// start of a slot.
fn bit_of(p: *const u8) -> Option<(usize, u64)> {
    let off = (p as usize).wrapping_sub(BASE.load(Ordering::Relaxed));
    (off % SLOT == 0).then(|| (off / SLOT / 64, 1u64 << (off / SLOT % 64)))
}

/// Whether `p` (inside the reservation) is a live zero-size block.
pub fn is_live(p: *const u8) -> bool {
    bit_of(p).is_some_and(|(w, bit)| word(w).load(Ordering::Relaxed) & bit != 0)
}

/// Free the zero-size block at `p` (inside the reservation). `size` is the size the caller
/// claims (0 for none): anything larger is misuse. Aborts on a block already freed or a
/// pointer that is not a slot's start.
pub fn free(p: *mut u8, size: usize) {
    let Some((w, bit)) = bit_of(p) else {
        os::fatal_ptr("invalid free of", p as usize);
    };
    if word(w).fetch_and(!bit, Ordering::Release) & bit == 0 {
        os::fatal_ptr("double free of", p as usize);
    }
    if size != 0 {
        os::fatal_ptr(
            "sized free with a size larger than the block at",
            p as usize,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore)] // maps the reservation
    fn unique_aligned_and_reusable_slots() {
        let mut seen = std::collections::HashSet::new();
        for align in [1, 16, 32, 256, 1024, 4096] {
            let p = alloc(align);
            assert!(!p.is_null() && contains(p) && is_live(p));
            assert_eq!(p as usize % align, 0, "align {align}");
            assert!(seen.insert(p as usize), "slot handed out twice");
        }
        assert!(alloc(2 * MAX_ALIGN).is_null(), "too large an alignment");
        let p = alloc(16);
        free(p, 0);
        assert!(!is_live(p));
        // The search moves on: the slot just freed does not come back at once.
        let q = alloc(16);
        assert_ne!(p, q);
        assert!(
            !is_live(p.wrapping_add(8)),
            "an interior pointer is no slot"
        );
        free(q, 0);
        for p in seen {
            free(p as *mut u8, 0);
        }
    }
}
