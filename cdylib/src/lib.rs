//! `libmapalloc.so` / `libmapalloc.a`: the C ABI face of mapalloc.
//!
//! Every exported symbol is a one-line forward into `mapalloc::c_api`, which holds the
//! behaviour (errno, glibc's special cases); each line below lists every name under which one
//! behaviour is exported: the standard name, glibc's internal alias where there is one, and
//! the prefixed name declared in `include/mapalloc.h`. Preload the shared library to replace
//! the allocator of any dynamically linked program:
//!
//! ```sh
//! LD_PRELOAD=target/release/libmapalloc.so program
//! ```
//!
//! Built with `panic = "abort"` (release profile): nothing can unwind across `extern "C"`.
//! The C++ allocation functions (every replaceable `operator new`/`delete`) are in `cxx`.

#![deny(unsafe_op_in_unsafe_fn)]
// Without `std` (whenever panics abort, as in the release profile): `std`'s panic machinery
// (backtraces, symbolisation) made up most of the library's text and needed `libgcc_s.so.1`,
// and every text page a program touches counts in its resident set. A panic is a bug in
// mapalloc; the handler below reports it and aborts.
#![cfg_attr(panic = "abort", no_std)]

// `std` links the C library; without it, link it here (the `libc` crate leaves that to
// `std`), so that the library records its dependency on `libc.so.6` with symbol versions and
// gets `pthread_atfork` from `libc_nonshared.a` as glibc intends.
#[cfg(panic = "abort")]
#[link(name = "c")]
unsafe extern "C" {}

#[cfg(panic = "abort")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    c_api::panicked()
}

mod cxx;

use core::ffi::{c_int, c_void};
use mapalloc::c_api;
use mapalloc::c_api::{Mallinfo, Mallinfo2};

/// Export `target` under each of the names (one function per name, peeled off recursively).
macro_rules! export {
    ($name:ident $(, $rest:ident)* => fn($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $target:path) => {
        /// # Safety
        /// The C contract of the function (see `include/mapalloc.h`): pointers passed in are
        /// null or blocks from this allocator, out-pointers are writable.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) $(-> $ret)? {
            #[allow(unused_unsafe)]
            // SAFETY: the caller's C contract is the forwarded function's contract.
            unsafe { $target($($arg),*) }
        }
        export!($($rest),* => fn($($arg: $ty),*) $(-> $ret)? = $target);
    };
    (=> fn($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $target:path) => {};
}

export!(malloc, __libc_malloc, mapalloc_malloc => fn(size: usize) -> *mut c_void = c_api::malloc);
export!(free, __libc_free, mapalloc_free => fn(p: *mut c_void) = c_api::free);
export!(calloc, __libc_calloc, mapalloc_calloc => fn(n: usize, size: usize) -> *mut c_void = c_api::calloc);
export!(realloc, __libc_realloc, mapalloc_realloc => fn(p: *mut c_void, size: usize) -> *mut c_void = c_api::realloc);
export!(reallocarray, mapalloc_reallocarray => fn(p: *mut c_void, n: usize, size: usize) -> *mut c_void = c_api::reallocarray);
export!(posix_memalign, __posix_memalign, mapalloc_posix_memalign => fn(memptr: *mut *mut c_void, align: usize, size: usize) -> c_int = c_api::posix_memalign);
export!(aligned_alloc, mapalloc_aligned_alloc => fn(align: usize, size: usize) -> *mut c_void = c_api::aligned_alloc);
export!(memalign, __libc_memalign, mapalloc_memalign => fn(align: usize, size: usize) -> *mut c_void = c_api::memalign);
export!(valloc, mapalloc_valloc => fn(size: usize) -> *mut c_void = c_api::valloc);
export!(pvalloc, mapalloc_pvalloc => fn(size: usize) -> *mut c_void = c_api::pvalloc);
export!(malloc_usable_size, mapalloc_malloc_usable_size => fn(p: *mut c_void) -> usize = c_api::malloc_usable_size);
export!(free_sized, mapalloc_free_sized => fn(p: *mut c_void, size: usize) = c_api::free_sized);
export!(free_aligned_sized, mapalloc_free_aligned_sized => fn(p: *mut c_void, align: usize, size: usize) = c_api::free_aligned_sized);
export!(malloc_trim, mapalloc_malloc_trim => fn(pad: usize) -> c_int = c_api::malloc_trim);
export!(mallinfo => fn() -> Mallinfo = c_api::mallinfo);
export!(mallinfo2 => fn() -> Mallinfo2 = c_api::mallinfo2);
export!(mallopt, mapalloc_mallopt => fn(param: c_int, value: c_int) -> c_int = c_api::mallopt);
export!(malloc_info, mapalloc_malloc_info => fn(options: c_int, fp: *mut libc::FILE) -> c_int = c_api::malloc_info);
export!(malloc_stats, mapalloc_stats_print => fn() = c_api::stats_print);
export!(mapalloc_profile_dump => fn(path: *const libc::c_char) -> c_int = c_api::profile_dump);
