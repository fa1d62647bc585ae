//! The core entry points, shared by the Rust face (`global`) and the C face (`c_api`):
//! dispatch between size-class blocks (`heap`) and large blocks (`large`).
//!
//! These functions report failure as a null pointer and never touch `errno`; the C semantics
//! (errno, glibc's special cases) live in `c_api`.

use core::ptr;

use crate::size_class::{self, MAX_CLASS_SIZE, MAX_MEDIUM_SIZE, MIN_ALIGN};
use crate::{config, heap, large, os, segment, strict};

/// Allocate `size` bytes, 16-byte aligned. Null when out of memory or impossible.
#[inline]
pub fn malloc(size: usize) -> *mut u8 {
    if config::strict() {
        return strict::malloc(size);
    }
    if size <= MAX_CLASS_SIZE {
        heap::alloc(size_class::class_of(size))
    } else {
        large::alloc(size, 0)
    }
}

/// Allocate `size` bytes aligned to `align` (a power of two).
#[inline]
pub fn malloc_aligned(size: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    if config::strict() {
        return strict::malloc_aligned(size, align);
    }
    if align <= MIN_ALIGN {
        return malloc(size);
    }
    if align <= MAX_MEDIUM_SIZE {
        if let Some(c) = size_class::class_for_aligned(size, align) {
            return heap::alloc(c);
        }
    }
    large::alloc(size, align)
}

/// Allocate `size` zeroed bytes aligned to `align` (a power of two).
pub fn malloc_zeroed(size: usize, align: usize) -> *mut u8 {
    if config::strict() {
        return strict::malloc_zeroed(size, align);
    }
    if size > MAX_CLASS_SIZE || align > MAX_MEDIUM_SIZE {
        // Large blocks come zeroed from the kernel, or from the cache, which zeroes them.
        return large::alloc_zeroed(size, align);
    }
    let p = malloc_aligned(size, align);
    if !p.is_null() {
        // SAFETY: `p` is a fresh block of at least `size` bytes.
        unsafe { ptr::write_bytes(p, 0, size) };
    }
    p
}

/// Free `p` (null is a no-op). `size`, when non-zero, is the size the caller says it
/// allocated; a size larger than the block is misuse and aborts.
///
/// # Safety
/// `p` is null or was returned by this allocator (anything else is detected and aborts,
/// unless it happens to be the address of another live block).
#[inline(always)]
pub unsafe fn free(p: *mut u8, size: usize) {
    if config::strict() {
        // SAFETY: forwarded contract.
        return unsafe { strict::free(p, size) };
    }
    if p.is_null() {
        return;
    }
    match segment::segment_of(p as usize) {
        // SAFETY: `seg` contains `p`.
        Some(seg) => unsafe { heap::free(seg, p, size) },
        None => large::free(p, size),
    }
}

/// Usable size of the live block at `p` (0 for null). Aborts for a pointer that is not a
/// live block of ours.
///
/// # Safety
/// `p` is null or a pointer this allocator returned.
pub unsafe fn usable_size(p: *const u8) -> usize {
    if p.is_null() {
        return 0;
    }
    if config::strict() {
        // SAFETY: forwarded contract.
        return unsafe { strict::usable_size(p) };
    }
    let u = match segment::segment_of(p as usize) {
        // SAFETY: `seg` contains `p`.
        Some(seg) => unsafe { heap::usable_size(seg, p as *mut u8) },
        None => large::usable_size(p),
    };
    match u {
        Some(u) => u,
        None => misuse(
            "malloc_usable_size of freed pointer",
            "malloc_usable_size of invalid pointer",
            p as usize,
        ),
    }
}

/// Resize the block at `p` (non-null) to `size` bytes with alignment `align`, in place when
/// the block allows it. Null when out of memory: the old block is then intact.
///
/// # Safety
/// `p` is a live block of this allocator allocated with alignment `align` or less.
pub unsafe fn realloc(p: *mut u8, size: usize, align: usize) -> *mut u8 {
    if config::strict() {
        // SAFETY: forwarded contract.
        return unsafe { strict::realloc(p, size, align) };
    }
    let seg = segment::segment_of(p as usize);
    let usable = match seg {
        // SAFETY: `seg` contains `p`.
        Some(seg) => unsafe { heap::usable_size(seg, p) },
        None => large::usable_size(p),
    };
    let Some(usable) = usable else {
        misuse(
            "realloc of freed pointer",
            "realloc of invalid pointer",
            p as usize,
        );
    };
    if seg.is_some() {
        // In place while the request still fits the class and does not waste over half of it.
        if size <= usable && (size >= usable / 2 || usable <= 2 * MIN_ALIGN) {
            return p;
        }
    } else if size > MAX_CLASS_SIZE && (p as usize) % align == 0 {
        let q = large::resize(p, size, align);
        if !q.is_null() {
            return q;
        }
    }
    let q = malloc_aligned(size, align);
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live, distinct, and at least min(size, usable) bytes long.
    unsafe {
        ptr::copy_nonoverlapping(p, q, size.min(usable));
        free(p, 0);
    }
    q
}

/// Abort on a use of `p`, which is not a live block: with `freed` when it was a block of ours
/// that has been freed (from the segment's page descriptors or the large-block table and its
/// ring of recently unmapped blocks), else with `invalid`. Nothing in front of `p` is read.
#[cold]
#[inline(never)]
pub(crate) fn misuse(freed: &str, invalid: &str, p: usize) -> ! {
    let was_freed = match segment::segment_of(p) {
        // A segment may have been mapped where a large block was unmapped (see
        // `heap::bad_free`).
        Some(seg) => {
            // SAFETY: `seg` is a mapped segment of ours; only its metadata is read.
            let held = unsafe { (*seg).held_block(p) };
            held || large::was_freed(p as *const u8)
        }
        None => large::was_freed(p as *const u8),
    };
    os::fatal_ptr(if was_freed { freed } else { invalid }, p)
}
