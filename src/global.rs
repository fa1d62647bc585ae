//! The Rust face: [`MapAlloc`] as `#[global_allocator]`.

use core::alloc::{GlobalAlloc, Layout};

use crate::alloc;
use crate::size_class::MIN_ALIGN;

/// The mapalloc global allocator. A zero-sized handle: every instance uses the same
/// process-wide allocator.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: mapalloc::MapAlloc = mapalloc::MapAlloc;
///
/// let v: Vec<u64> = (0..1000).collect();
/// assert_eq!(v.iter().sum::<u64>(), 499_500);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct MapAlloc;

// SAFETY: blocks are valid for their layout until freed, never overlap while live, and
// `realloc` keeps the contents; every path is thread-safe and never unwinds or allocates
// through the global allocator.
unsafe impl GlobalAlloc for MapAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            alloc::malloc(layout.size())
        } else {
            alloc::malloc_aligned(layout.size(), layout.align())
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        alloc::malloc_zeroed(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the GlobalAlloc contract: `ptr` came from this allocator with `layout`.
        // The size is checked against the block (a sized free).
        unsafe { alloc::free(ptr, layout.size()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the GlobalAlloc contract: `ptr` is live with `layout`, `new_size` is valid
        // for that alignment.
        unsafe { alloc::realloc(ptr, new_size, layout.align()) }
    }
}
