//! The calling thread's heap pointer: one pointer-sized thread-local slot.
//!
//! In a shared library, Rust's `thread_local!` compiles to the global-dynamic TLS model: every
//! access calls `__tls_get_addr`, which costs as much as the rest of a `malloc` and forces the
//! caller to save registers (measured in shared/DESIGN.md, section 4). The slot is therefore
//! the OS layer's (`os::tls_get`/`os::tls_set`, in `os/arch`): defined in `.tbss` with
//! `global_asm!` and read with each architecture's initial-exec sequence (x86-64: `mov
//! sym@gottpoff(%rip)`, then one `%fs`-relative load; AArch64: `adrp`/`ldr` of
//! `:gottprel:`, `mrs tpidr_el0`, one load), no call. The library then needs a few bytes of
//! static TLS, which glibc reserves for libraries loaded at start-up (`LD_PRELOAD`) and keeps
//! a surplus of for later `dlopen`s. The symbol is hidden, so a program that links mapalloc as
//! its Rust global allocator *and* preloads `libmapalloc.so` gets two independent slots. Only
//! tests on other architectures, and Miri, use a `thread_local!` instead (they have `std`).
//!
//! The slot holds null (no heap yet), `DONE` (thread-exit hook ran) or the thread's heap.

use crate::heap::Heap;
use crate::os;

/// The calling thread's slot.
#[inline(always)]
pub fn get() -> *mut Heap {
    os::tls_get().cast()
}

/// Set the calling thread's slot.
#[inline(always)]
pub fn set(h: *mut Heap) {
    os::tls_set(h.cast())
}
