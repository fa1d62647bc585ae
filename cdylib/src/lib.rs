//! `libmapalloc.so` / `libmapalloc.a`: the C ABI face of mapalloc.
//!
//! Every exported symbol is a one-line forward into `mapalloc::c_api`, which holds the
//! behaviour (errno, glibc's special cases). Preload the shared library to replace the
//! allocator of any dynamically linked program:
//!
//! ```sh
//! LD_PRELOAD=target/release/libmapalloc.so program
//! ```
//!
//! Built with `panic = "abort"` (release profile): nothing can unwind across `extern "C"`.
//! C++ `operator new`/`delete` are not exported: libstdc++'s versions call `malloc`/`free`
//! and keep the exact standard semantics (`std::bad_alloc`, the new-handler).

#![deny(unsafe_op_in_unsafe_fn)]

use core::ffi::{c_int, c_void};
use mapalloc::c_api;
use mapalloc::c_api::{Mallinfo, Mallinfo2};

// Standard names ---------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    c_api::malloc(size)
}

/// # Safety
/// `p` is null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { c_api::free(p) }
}

#[unsafe(no_mangle)]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    c_api::calloc(n, size)
}

/// # Safety
/// `p` is null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the caller's contract.
    unsafe { c_api::realloc(p, size) }
}

/// # Safety
/// `p` is null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    // SAFETY: the caller's contract.
    unsafe { c_api::reallocarray(p, n, size) }
}

/// # Safety
/// `memptr` is valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(
    memptr: *mut *mut c_void,
    align: usize,
    size: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { c_api::posix_memalign(memptr, align, size) }
}

#[unsafe(no_mangle)]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    c_api::aligned_alloc(align, size)
}

#[unsafe(no_mangle)]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    c_api::memalign(align, size)
}

#[unsafe(no_mangle)]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    c_api::valloc(size)
}

#[unsafe(no_mangle)]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    c_api::pvalloc(size)
}

/// # Safety
/// `p` is null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: the caller's contract.
    unsafe { c_api::malloc_usable_size(p) }
}

/// # Safety
/// `p` is null or a live block of at least `size` bytes from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_sized(p: *mut c_void, size: usize) {
    // SAFETY: the caller's contract.
    unsafe { c_api::free_sized(p, size) }
}

/// # Safety
/// `p` is null or a live block of `size` bytes and alignment `align` from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
    // SAFETY: the caller's contract.
    unsafe { c_api::free_aligned_sized(p, align, size) }
}

#[unsafe(no_mangle)]
pub extern "C" fn malloc_trim(pad: usize) -> c_int {
    c_api::malloc_trim(pad)
}

#[unsafe(no_mangle)]
pub extern "C" fn mallinfo() -> Mallinfo {
    c_api::mallinfo()
}

#[unsafe(no_mangle)]
pub extern "C" fn mallinfo2() -> Mallinfo2 {
    c_api::mallinfo2()
}

#[unsafe(no_mangle)]
pub extern "C" fn malloc_stats() {
    c_api::stats_print()
}

// glibc's internal names, which some programs and libraries call directly ----------------

#[unsafe(no_mangle)]
pub extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    c_api::malloc(size)
}

/// # Safety
/// `p` is null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_free(p: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { c_api::free(p) }
}

#[unsafe(no_mangle)]
pub extern "C" fn __libc_calloc(n: usize, size: usize) -> *mut c_void {
    c_api::calloc(n, size)
}

/// # Safety
/// `p` is null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the caller's contract.
    unsafe { c_api::realloc(p, size) }
}

#[unsafe(no_mangle)]
pub extern "C" fn __libc_memalign(align: usize, size: usize) -> *mut c_void {
    c_api::memalign(align, size)
}

/// # Safety
/// `memptr` is valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __posix_memalign(
    memptr: *mut *mut c_void,
    align: usize,
    size: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { c_api::posix_memalign(memptr, align, size) }
}

// Prefixed names (include/mapalloc.h) -----------------------------------------------------

#[unsafe(no_mangle)]
pub extern "C" fn mapalloc_malloc(size: usize) -> *mut c_void {
    c_api::malloc(size)
}

/// # Safety
/// `p` is null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapalloc_free(p: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { c_api::free(p) }
}

#[unsafe(no_mangle)]
pub extern "C" fn mapalloc_calloc(n: usize, size: usize) -> *mut c_void {
    c_api::calloc(n, size)
}

/// # Safety
/// `p` is null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapalloc_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the caller's contract.
    unsafe { c_api::realloc(p, size) }
}

/// # Safety
/// `p` is null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapalloc_reallocarray(
    p: *mut c_void,
    n: usize,
    size: usize,
) -> *mut c_void {
    // SAFETY: the caller's contract.
    unsafe { c_api::reallocarray(p, n, size) }
}

/// # Safety
/// `memptr` is valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapalloc_posix_memalign(
    memptr: *mut *mut c_void,
    align: usize,
    size: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { c_api::posix_memalign(memptr, align, size) }
}

#[unsafe(no_mangle)]
pub extern "C" fn mapalloc_aligned_alloc(align: usize, size: usize) -> *mut c_void {
    c_api::aligned_alloc(align, size)
}

#[unsafe(no_mangle)]
pub extern "C" fn mapalloc_memalign(align: usize, size: usize) -> *mut c_void {
    c_api::memalign(align, size)
}

#[unsafe(no_mangle)]
pub extern "C" fn mapalloc_valloc(size: usize) -> *mut c_void {
    c_api::valloc(size)
}

#[unsafe(no_mangle)]
pub extern "C" fn mapalloc_pvalloc(size: usize) -> *mut c_void {
    c_api::pvalloc(size)
}

/// # Safety
/// `p` is null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapalloc_malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: the caller's contract.
    unsafe { c_api::malloc_usable_size(p) }
}

/// # Safety
/// `p` is null or a live block of at least `size` bytes from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapalloc_free_sized(p: *mut c_void, size: usize) {
    // SAFETY: the caller's contract.
    unsafe { c_api::free_sized(p, size) }
}

/// # Safety
/// `p` is null or a live block of `size` bytes and alignment `align` from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapalloc_free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
    // SAFETY: the caller's contract.
    unsafe { c_api::free_aligned_sized(p, align, size) }
}

#[unsafe(no_mangle)]
pub extern "C" fn mapalloc_malloc_trim(pad: usize) -> c_int {
    c_api::malloc_trim(pad)
}

#[unsafe(no_mangle)]
pub extern "C" fn mapalloc_stats_print() {
    c_api::stats_print()
}

// Exit report ------------------------------------------------------------------------------

extern "C" fn exit_report() {
    c_api::exit_report();
}

/// Runs when the library is unloaded or the process exits.
#[used]
#[unsafe(link_section = ".fini_array")]
static EXIT_REPORT: extern "C" fn() = exit_report;
