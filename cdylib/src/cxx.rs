//! The replaceable global C++ allocation functions ([new.delete]), under their Itanium names.
//!
//! The `operator new` variants live in `new.cc` (they must call the new-handler and throw
//! `std::bad_alloc`); the symbols here are naked trampolines that jump there, so that no Rust
//! frame is on the stack when they throw. The deletes are plain Rust forwards into `c_api`.

use core::ffi::c_void;
use mapalloc::c_api;

/// mapalloc's allocation for `new.cc`: `align` 0 is the default alignment. Null on failure;
/// never unwinds.
#[unsafe(no_mangle)]
pub extern "C" fn mapalloc_cxx_alloc(size: usize, align: usize) -> *mut c_void {
    if align == 0 {
        c_api::malloc(size)
    } else {
        c_api::aligned_alloc(align, size)
    }
}

unsafe extern "C" {
    fn mapalloc_cxx_new(size: usize, align: usize) -> *mut c_void;
    fn mapalloc_cxx_new_nothrow(size: usize, align: usize) -> *mut c_void;
}

/// Export a naked trampoline `$name` that jumps to `$target`, the alignment argument (second
/// register) set to 0 first when the variant has none.
macro_rules! trampoline {
    ($name:ident, default_align, $target:ident) => {
        /// # Safety
        /// The C++ contract of the allocation function.
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name() {
            mapalloc::__tail_call_new!(zero_align, $target);
        }
    };
    ($name:ident, given_align, $target:ident) => {
        /// # Safety
        /// The C++ contract of the allocation function.
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name() {
            mapalloc::__tail_call_new!(keep_align, $target);
        }
    };
}

// operator new(size_t), new[](size_t)
trampoline!(_Znwm, default_align, mapalloc_cxx_new);
trampoline!(_Znam, default_align, mapalloc_cxx_new);
// operator new(size_t, align_val_t), new[](size_t, align_val_t)
trampoline!(_ZnwmSt11align_val_t, given_align, mapalloc_cxx_new);
trampoline!(_ZnamSt11align_val_t, given_align, mapalloc_cxx_new);
// operator new(size_t, const nothrow_t&), new[](size_t, const nothrow_t&): the nothrow_t
// reference is the second argument, replaced by the default alignment.
trampoline!(_ZnwmRKSt9nothrow_t, default_align, mapalloc_cxx_new_nothrow);
trampoline!(_ZnamRKSt9nothrow_t, default_align, mapalloc_cxx_new_nothrow);
// operator new(size_t, align_val_t, const nothrow_t&) and the new[] form.
trampoline!(
    _ZnwmSt11align_val_tRKSt9nothrow_t,
    given_align,
    mapalloc_cxx_new_nothrow
);
trampoline!(
    _ZnamSt11align_val_tRKSt9nothrow_t,
    given_align,
    mapalloc_cxx_new_nothrow
);

/// Export a delete variant. `$p`, `$size`, `$align` name the arguments it has (in order);
/// the others are passed as 0 to `c_api::cxx_delete` (0 size: unchecked; alignment 0:
/// unchecked).
macro_rules! delete {
    ($name:ident($($arg:ident: $ty:ty),*) => $size:expr, $align:expr) => {
        /// # Safety
        /// The C++ contract of the deallocation function: `p` is null or a live block from
        /// this allocator, allocated with the size and alignment given.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(p: *mut c_void $(, $arg: $ty)*) {
            // SAFETY: the caller's contract.
            unsafe { c_api::cxx_delete(p, $size, $align) }
        }
    };
}

// operator delete(void*), delete[](void*)
delete!(_ZdlPv() => 0, 0);
delete!(_ZdaPv() => 0, 0);
// (void*, size_t)
delete!(_ZdlPvm(size: usize) => size, 0);
delete!(_ZdaPvm(size: usize) => size, 0);
// (void*, align_val_t)
delete!(_ZdlPvSt11align_val_t(align: usize) => 0, align);
delete!(_ZdaPvSt11align_val_t(align: usize) => 0, align);
// (void*, size_t, align_val_t)
delete!(_ZdlPvmSt11align_val_t(size: usize, align: usize) => size, align);
delete!(_ZdaPvmSt11align_val_t(size: usize, align: usize) => size, align);
// (void*, const nothrow_t&)
delete!(_ZdlPvRKSt9nothrow_t(_nt: *const c_void) => 0, 0);
delete!(_ZdaPvRKSt9nothrow_t(_nt: *const c_void) => 0, 0);
// (void*, align_val_t, const nothrow_t&)
delete!(_ZdlPvSt11align_val_tRKSt9nothrow_t(align: usize, _nt: *const c_void) => 0, align);
delete!(_ZdaPvSt11align_val_tRKSt9nothrow_t(align: usize, _nt: *const c_void) => 0, align);
