//! The core entry points, shared by the Rust face (`global`) and the C face (`c_api`):
//! dispatch between size-class blocks (`heap`) and large blocks (`large`).
//!
//! These functions report failure as a null pointer and never touch `errno`; the C semantics
//! (errno, glibc's special cases) live in `c_api`.

use core::ptr;

use crate::size_class::{self, LARGE_FROM, MAX_MEDIUM_SIZE, MIN_ALIGN};
use crate::{config, heap, large, os, segment, strict, zero};

/// Allocate `size` bytes, 16-byte aligned. Null when out of memory or impossible.
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    if !config::plain() {
        return modal::malloc(size);
    }
    base_malloc(size)
}

/// [`malloc`] on the default paths.
#[inline(always)]
fn base_malloc(size: usize) -> *mut u8 {
    if size < LARGE_FROM {
        // Size 0 maps to `ZERO_CLASS`, whose queue is always empty: `heap` hands it to `zero`
        // on its slow path, so the fast path pays nothing for it.
        heap::alloc(size_class::class_or_zero(size))
    } else {
        large_alloc(size, 0, false)
    }
}

/// Allocate `size` bytes aligned to `align` (a power of two).
#[inline]
pub fn malloc_aligned(size: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    if size == 0 {
        return zero_size(align);
    }
    if !config::plain() {
        return modal::malloc_aligned(size, align);
    }
    base_malloc_aligned(size, align)
}

/// [`malloc_aligned`] of a non-zero size on the default paths.
#[inline]
fn base_malloc_aligned(size: usize, align: usize) -> *mut u8 {
    if align <= MIN_ALIGN {
        return base_malloc(size);
    }
    if align <= MAX_MEDIUM_SIZE && size < LARGE_FROM {
        if let Some(c) = size_class::class_for_aligned(size, align) {
            return heap::alloc(c);
        }
    }
    large_alloc(size, align, false)
}

/// Allocate `size` zeroed bytes aligned to `align` (a power of two).
pub fn malloc_zeroed(size: usize, align: usize) -> *mut u8 {
    if size == 0 {
        return zero_size(align);
    }
    if !config::plain() {
        return modal::malloc_zeroed(size, align);
    }
    base_malloc_zeroed(size, align)
}

/// [`malloc_zeroed`] of a non-zero size on the default paths.
fn base_malloc_zeroed(size: usize, align: usize) -> *mut u8 {
    if size >= LARGE_FROM || align > MAX_MEDIUM_SIZE {
        // Large blocks come zeroed from the kernel, or from the cache, which zeroes them.
        return large_alloc(size, align, true);
    }
    let p = base_malloc_aligned(size, align);
    if !p.is_null() {
        // SAFETY: `p` is a fresh block of at least `size` bytes.
        unsafe { ptr::write_bytes(p, 0, size) };
    }
    p
}

/// A large block (zeroed if `zero`); when it cannot be mapped, the caches are emptied (see
/// [`reclaim`]) and it is tried once more.
#[inline]
pub(crate) fn large_alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    let get = || {
        if zero {
            large::alloc_zeroed(size, align)
        } else {
            large::alloc(size, align)
        }
    };
    let p = get();
    if p.is_null() && reclaim() > 0 {
        return get();
    }
    p
}

/// A mapping failed (the address space may be short: `RLIMIT_AS`): give back what
/// `malloc_trim` gives back (the empty pages this thread's heap keeps, abandoned heaps' free
/// pages, the empty segments and freed large blocks the caches keep), so that the next
/// mapping can take their place. Returns the bytes released.
#[cold]
#[inline(never)]
pub(crate) fn reclaim() -> usize {
    heap::trim()
}

/// A zero-size block (see `zero`): an inaccessible slot, or a 1-byte block when no slot can be
/// had.
#[cold]
#[inline(never)]
pub(crate) fn zero_size(align: usize) -> *mut u8 {
    let p = zero::alloc(align);
    if !p.is_null() {
        return p;
    }
    malloc_aligned(1, align)
}

/// Free `p` (null is a no-op). `size`, when non-zero, is the size the caller says it
/// allocated; a size larger than the block is misuse and aborts.
///
/// # Safety
/// `p` is null or was returned by this allocator (anything else is detected and aborts,
/// unless it happens to be the address of another live block).
#[inline(always)]
pub unsafe fn free(p: *mut u8, size: usize) {
    if !config::plain() {
        // SAFETY: forwarded contract.
        return unsafe { modal::free(p, size) };
    }
    // SAFETY: forwarded contract.
    unsafe { base_free(p, size) }
}

/// [`free`] on the default paths.
///
/// # Safety
/// As [`free`].
#[inline(always)]
unsafe fn base_free(p: *mut u8, size: usize) {
    if p.is_null() {
        return;
    }
    match segment::segment_of(p as usize) {
        // SAFETY: `seg` contains `p`.
        Some(seg) => unsafe { heap::free(seg, p, size) },
        None if zero::contains(p) => zero::free(p, size),
        None => large_free(p, size),
    }
}

/// Free a large block; when it went into the large-block cache, this thread's heap schedules
/// the cache's decay.
#[cold]
pub(crate) fn large_free(p: *mut u8, size: usize) {
    if let Some(now) = large::free(p, size) {
        heap::large_freed(now);
    }
}

/// Free `p` for C++'s sized and aligned `operator delete`: `size` (0: none given) must be the
/// size the block was allocated with, `align` (0: none given) its alignment. An alignment the
/// pointer lacks aborts (`aligned delete of 0x... with an alignment the block lacks`), and so
/// does a size that does not lead to the block (`sized delete of 0x... with the wrong size`):
/// in strict mode the exact requested size, which the canary records; in the default mode a
/// size whose class is not the block's (for large blocks, whose usable size is the request
/// rounded up to 16 or to the alignment, a size that rounds to another one). Deleting an object through a base class of
/// another size, or `new[]` with `delete` of a type with a destructor (the array cookie), lands
/// here. A pointer that is not a live block goes on to `free`, which names the fault.
///
/// # Safety
/// As [`free`].
pub unsafe fn free_exact(p: *mut u8, size: usize, align: usize) {
    if p.is_null() {
        return;
    }
    if align != 0 && (!align.is_power_of_two() || (p as usize) % align != 0) {
        os::fatal_ptr_then(
            "aligned delete of",
            p as usize,
            " with an alignment the block lacks",
        );
    }
    // SAFETY: `p` is non-null and, per the contract, a pointer of ours (else `free` aborts).
    if size != 0 && unsafe { !size_leads_to(p, size, align.max(MIN_ALIGN)) } {
        os::fatal_ptr_then("sized delete of", p as usize, " with the wrong size");
    }
    // SAFETY: forwarded contract.
    unsafe { free(p, 0) }
}

/// Whether a request of `size` bytes aligned to `align` could have returned the block at `p`
/// (true when `p` is not a live block: `free` reports that).
///
/// # Safety
/// `p` is non-null.
unsafe fn size_leads_to(p: *mut u8, size: usize, align: usize) -> bool {
    if config::strict() {
        // SAFETY: forwarded contract.
        return unsafe { strict::requested_size(p) }.is_none_or(|n| n == size);
    }
    let class = if size >= LARGE_FROM {
        None
    } else if align <= MIN_ALIGN {
        Some(size_class::class_of(size))
    } else if align <= MAX_MEDIUM_SIZE {
        size_class::class_for_aligned(size, align)
    } else {
        None
    };
    match segment::segment_of(p as usize) {
        // SAFETY: `seg` contains `p`.
        Some(seg) => match unsafe { heap::usable_size(seg, p) } {
            Some(block) => class.is_some_and(|c| size_class::class_size(c) == block),
            None => true,
        },
        None => match large::usable_size(p) {
            Some(block) => match class {
                // A class block served as a large block of its own when no segment could be
                // had (`heap::large_fallback`).
                Some(c) => size_class::class_size(c) == block,
                None => large::usable_for(size, align) == Some(block),
            },
            None => true,
        },
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
    if zero::contains(p) {
        return if zero::is_live(p) {
            0
        } else {
            misuse(
                "malloc_usable_size of freed pointer",
                "malloc_usable_size of invalid pointer",
                p as usize,
            )
        };
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
    if zero::contains(p) {
        if !zero::is_live(p) {
            misuse(
                "realloc of freed pointer",
                "realloc of invalid pointer",
                p as usize,
            );
        }
        // Nothing to copy: a fresh block, and the slot goes.
        let q = malloc_aligned(size, align);
        if !q.is_null() {
            zero::free(p, 0);
        }
        return q;
    }
    if !config::plain() {
        // SAFETY: forwarded contract.
        return unsafe { modal::realloc(p, size, align) };
    }
    // SAFETY: forwarded contract.
    unsafe { base_realloc(p, size, align) }
}

/// [`realloc`] of a block that is not a zero-size slot, on the default paths.
///
/// # Safety
/// As [`realloc`].
unsafe fn base_realloc(p: *mut u8, size: usize, align: usize) -> *mut u8 {
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
    } else if size >= LARGE_FROM && (p as usize) % align == 0 {
        let q = large::resize(p, size, align);
        if !q.is_null() {
            return q;
        }
    }
    let q = if size == 0 {
        zero_size(align)
    } else {
        base_malloc_aligned(size, align)
    };
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live, distinct, and at least min(size, usable) bytes long.
    unsafe {
        ptr::copy_nonoverlapping(p, q, size.min(usable));
        base_free(p, 0);
    }
    q
}

/// The paths of the other modes, out of line: strict hardening (`strict`), heap profiling
/// (`prof`), or both. Each passes the address of one of its locals to `prof` as the marker of
/// the allocator's entry frame: the profile's stacks begin above it.
mod modal {
    use super::*;
    use crate::config::{MODE_PROF, MODE_STRICT};
    use crate::prof;

    /// The block `p` of `size` bytes was just allocated in mode `m`: the profiler counts it.
    #[inline(always)]
    fn allocated(m: u8, p: *mut u8, size: usize, marker: &u8) -> *mut u8 {
        if m & MODE_PROF != 0 && !p.is_null() {
            // The marker's address is taken only here, so only a sample computes it.
            prof::allocated(p, size, marker as *const u8 as usize);
        }
        p
    }

    /// One allocation in mode `m`: strict mode's path or the default one, then the profiler.
    #[inline(always)]
    fn alloc_in(
        m: u8,
        size: usize,
        marker: &u8,
        strict_path: impl FnOnce() -> *mut u8,
        base_path: impl FnOnce() -> *mut u8,
    ) -> *mut u8 {
        let p = if m & MODE_STRICT != 0 {
            strict_path()
        } else {
            base_path()
        };
        allocated(m, p, size, marker)
    }

    #[inline(never)]
    pub fn malloc(size: usize) -> *mut u8 {
        let marker = 0u8;
        let (strict_path, base_path) = (|| strict::malloc(size), || base_malloc(size));
        alloc_in(config::mode(), size, &marker, strict_path, base_path)
    }

    #[inline(never)]
    pub fn malloc_aligned(size: usize, align: usize) -> *mut u8 {
        let marker = 0u8;
        let strict_path = || strict::malloc_aligned(size, align);
        let base_path = || base_malloc_aligned(size, align);
        alloc_in(config::mode(), size, &marker, strict_path, base_path)
    }

    #[inline(never)]
    pub fn malloc_zeroed(size: usize, align: usize) -> *mut u8 {
        let marker = 0u8;
        let strict_path = || strict::malloc_zeroed(size, align);
        let base_path = || base_malloc_zeroed(size, align);
        alloc_in(config::mode(), size, &marker, strict_path, base_path)
    }

    /// # Safety
    /// As [`super::free`].
    #[inline(never)]
    pub unsafe fn free(p: *mut u8, size: usize) {
        let m = config::mode();
        if m & MODE_STRICT != 0 {
            if !p.is_null() && m & MODE_PROF != 0 {
                prof::freeing(p);
            }
            // SAFETY: forwarded contract.
            return unsafe { strict::free(p, size) };
        }
        if p.is_null() {
            return;
        }
        // Profiling on the default paths: one segment lookup serves the profiler's check
        // and the free.
        match segment::segment_of(p as usize) {
            // SAFETY: `seg` contains `p`; forwarded contract.
            Some(seg) => unsafe {
                prof::freeing_in(seg, p);
                heap::free(seg, p, size)
            },
            None => {
                prof::freeing(p);
                // SAFETY: forwarded contract.
                unsafe { base_free(p, size) }
            }
        }
    }

    /// A block that `realloc` moves or resizes is, for the profile, freed and allocated
    /// again (a failed `realloc` loses the old block's sample).
    ///
    /// # Safety
    /// As [`super::realloc`].
    #[inline(never)]
    pub unsafe fn realloc(p: *mut u8, size: usize, align: usize) -> *mut u8 {
        let marker = 0u8;
        let m = config::mode();
        if m & MODE_PROF != 0 {
            prof::freeing(p);
        }
        // SAFETY: forwarded contract.
        let q = unsafe {
            if m & MODE_STRICT != 0 {
                strict::realloc(p, size, align)
            } else {
                base_realloc(p, size, align)
            }
        };
        allocated(m, q, size, &marker)
    }
}

/// Abort on a use of `p`, which is not a live block: with `freed` when it was a block of ours
/// that has been freed (from the segment's page descriptors or the large-block table and its
/// ring of recently unmapped blocks), else with `invalid`. Nothing in front of `p` is read.
#[cold]
#[inline(never)]
pub(crate) fn misuse(freed: &str, invalid: &str, p: usize) -> ! {
    if zero::contains(p as *const u8) {
        // A slot's start that is not live was a zero-size block; anything else in the
        // reservation never was a block.
        os::fatal_ptr(if p % 16 == 0 { freed } else { invalid }, p)
    }
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
