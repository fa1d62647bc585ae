//! Tail guards: a guard at the end of every page of a segment, laid out when the layer above
//! asks for them (strict mode does, through [`alloc`](super::alloc)'s `tail_guards`), within a
//! process-wide budget of [`TAIL_GUARD_BUDGET`] guards (each is an `mprotect` that splits the
//! mapping). A part of `segment`.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::Segment;
use crate::os;

/// Most tail guards laid out at once in all segments: each splits a mapping (8,192 of them
/// are an eighth of Linux's default `vm.max_map_count`).
pub const TAIL_GUARD_BUDGET: usize = 8192;

/// Tail guards laid out, in all segments.
static GUARDS: AtomicUsize = AtomicUsize::new(0);

/// Make the last OS page of every page of `seg` a guard, unless
/// the segment already has that layout or the guard budget is spent (see
/// `Segment::tail_guard`): a page that ends at a guard already (the segment's end guard, or an
/// interior guard of the default mode: every page of the medium kind) gets none, one that
/// ends at the unused slot of an interior guard the segment lacks gets it there. A reused segment laid out for another kind is opened
/// again first (one `mprotect` per 512 KiB stride: the default mode's interior guards, made
/// with `mprotect` where the kernel has no guard markers, stay closed).
///
/// # Safety
/// `seg` is a segment of ours, set up for its kind, with no page in use.
pub(super) unsafe fn lay(seg: *mut Segment) {
    // SAFETY: per the contract, the header and the data area are ours.
    unsafe {
        let s = &mut *seg;
        let want = s.kind as u8 + 1;
        if s.guard_kind == want {
            return;
        }
        let ps = os::page_size();
        let (first, num) = s.page_range();
        let lo = s.page_bounds(first).0;
        let hi = s.page_bounds(num - 1).1;
        if s.guard_kind != 0 {
            // Merging the data area back into one mapping never needs a new one.
            if !s.reopen(lo, hi) {
                os::internal("tail guards: reopening a segment failed");
            }
            GUARDS.fetch_sub(s.guards as usize, Relaxed);
            s.guards = 0;
            s.guard_kind = 0;
            s.page_tail = 0;
        }
        let count = (first..num).filter_map(|i| s.tail_guard(i)).count();
        if GUARDS.fetch_add(count, Relaxed) + count > TAIL_GUARD_BUDGET {
            GUARDS.fetch_sub(count, Relaxed);
            return;
        }
        for (at, _) in (first..num).filter_map(|i| s.tail_guard(i)) {
            if !os::protect_none(at as *mut u8, ps) {
                // No mapping left (vm.max_map_count): undo, keep the segment unguarded (the
                // guards laid in unused slots may stay: no block lies there).
                if !s.reopen(lo, at) {
                    os::internal("tail guards: undo failed");
                }
                GUARDS.fetch_sub(count, Relaxed);
                return;
            }
        }
        s.guards = count as u32;
        s.page_tail = ps as u32;
        s.guard_kind = want;
    }
}

/// A segment is being unmapped: its guards leave the budget.
pub(super) fn released(seg: &Segment) {
    if seg.guards != 0 {
        GUARDS.fetch_sub(seg.guards as usize, Relaxed);
    }
}
