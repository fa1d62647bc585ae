//! The emergency segment: one segment's worth of address space inside the library's own
//! zero-initialised data (`.bss`), for small blocks when the kernel refuses to map another
//! segment (an address-space limit, `RLIMIT_AS`, set just above what the process has mapped,
//! as containers and batch systems do). It is part of the executable image, so the space was
//! granted when the library was loaded, and a program that allocates a few hundred bytes
//! under such a limit still gets them.
//!
//! The area is twice [`SEGMENT_SIZE`] so that a whole segment-aligned frame always lies
//! inside it (a segment's header sits at its frame's base, found from any pointer by masking;
//! a frame shared with other data could not be ours alone). Until it is used it costs address
//! space only: untouched `.bss` pages are never resident. It is handed to one heap at a time,
//! for whichever kind of page first finds no segment (blocks of other kinds then become
//! large blocks of their own, see `heap::large_fallback`), and it is never unmapped: when its
//! last page is freed it waits here for the next emergency.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::segment::SEGMENT_SIZE;

#[repr(C, align(4096))]
struct Area(UnsafeCell<[u8; 2 * SEGMENT_SIZE]>);

// SAFETY: the memory is only reached through the segment it holds, whose users synchronise
// as for any segment; the state below hands it to one user at a time.
unsafe impl Sync for Area {}

static AREA: Area = Area(UnsafeCell::new([0; 2 * SEGMENT_SIZE]));

const NEVER: u8 = 0;
const IN_USE: u8 = 1;
const IDLE: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(NEVER);

/// The segment-aligned frame inside the area.
pub fn frame() -> usize {
    let base = AREA.0.get() as usize;
    (base + SEGMENT_SIZE - 1) & !(SEGMENT_SIZE - 1)
}

/// Take the emergency segment: `Some(true)` the first time (fresh zeroed memory, no guards
/// yet), `Some(false)` when it was used before, `None` while another heap has it.
pub fn claim() -> Option<bool> {
    for (from, fresh) in [(NEVER, true), (IDLE, false)] {
        if STATE
            .compare_exchange(from, IN_USE, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Some(fresh);
        }
    }
    None
}

/// Whether `seg` is the emergency segment.
#[inline]
pub fn is(seg: usize) -> bool {
    seg == frame()
}

/// Give the emergency segment back (its last page was freed).
pub fn give_back() {
    STATE.store(IDLE, Ordering::Release);
}

/// Give back a claim that found the segment fresh and could not set it up (its guards were
/// refused): the next claim finds it fresh again and sets it up itself.
pub fn give_back_unused() {
    STATE.store(NEVER, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_exclusive_and_a_failed_setup_stays_fresh() {
        // The only test that claims: the state is this process's own.
        assert_eq!(claim(), Some(true));
        assert_eq!(claim(), None, "another heap has it");
        give_back_unused();
        assert_eq!(claim(), Some(true), "set-up refused: still fresh");
        give_back();
        assert_eq!(claim(), Some(false), "used before");
        give_back();
    }

    #[test]
    fn the_frame_lies_inside_the_area() {
        let base = AREA.0.get() as usize;
        let f = frame();
        assert_eq!(f % SEGMENT_SIZE, 0);
        assert!(f >= base && f + SEGMENT_SIZE <= base + 2 * SEGMENT_SIZE);
    }
}
