//! The calling thread's heap pointer: one pointer-sized thread-local slot.
//!
//! In a shared library, Rust's `thread_local!` compiles to the global-dynamic TLS model: every
//! access calls `__tls_get_addr`, which costs as much as the rest of a `malloc` and forces the
//! caller to save registers (measured in shared/DESIGN.md, section 4). On x86_64 Linux the slot
//! is therefore defined in `.tbss` with `global_asm!` and read with the initial-exec sequence
//! (`mov sym@gottpoff(%rip)`, then one `%fs`-relative load): two instructions, no call. The
//! library then needs a few bytes of static TLS, which glibc reserves for libraries loaded at
//! start-up (`LD_PRELOAD`) and keeps a surplus of for later `dlopen`s. The symbol is hidden,
//! so a program that links mapalloc as its Rust global allocator *and* preloads
//! `libmapalloc.so` gets two independent slots. Elsewhere a `const`-initialised
//! `thread_local!` of a type without `Drop` is used (no destructor registration).
//!
//! The slot holds null (no heap yet), `DONE` (thread-exit hook ran) or the thread's heap.

use crate::heap::Heap;

#[cfg(all(
    target_arch = "x86_64",
    any(target_os = "linux", target_os = "freebsd")
))]
mod imp {
    use super::Heap;

    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl __mapalloc_tls_heap_v0",
        ".hidden __mapalloc_tls_heap_v0",
        ".type __mapalloc_tls_heap_v0, @object",
        ".size __mapalloc_tls_heap_v0, 8",
        "__mapalloc_tls_heap_v0:",
        ".zero 8",
        ".popsection",
    );

    #[inline(always)]
    pub fn get() -> *mut Heap {
        let v: *mut Heap;
        // SAFETY: reads this thread's 8-byte `.tbss` slot through its initial-exec offset;
        // the slot exists for every thread and starts out zero.
        unsafe {
            core::arch::asm!(
                "mov {v}, qword ptr [rip + __mapalloc_tls_heap_v0@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) v,
                options(nostack, readonly, preserves_flags),
            );
        }
        v
    }

    #[inline(always)]
    pub fn set(h: *mut Heap) {
        // SAFETY: writes this thread's slot (see `get`).
        unsafe {
            core::arch::asm!(
                "mov {t}, qword ptr [rip + __mapalloc_tls_heap_v0@GOTTPOFF]",
                "mov qword ptr fs:[{t}], {v}",
                t = out(reg) _,
                v = in(reg) h,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(all(
    target_arch = "x86_64",
    any(target_os = "linux", target_os = "freebsd")
)))]
mod imp {
    use super::Heap;
    use core::cell::Cell;

    thread_local! {
        static HEAP: Cell<*mut Heap> = const { Cell::new(core::ptr::null_mut()) };
    }

    #[inline(always)]
    pub fn get() -> *mut Heap {
        HEAP.with(|h| h.get())
    }

    #[inline(always)]
    pub fn set(h: *mut Heap) {
        HEAP.with(|c| c.set(h))
    }
}

pub use imp::{get, set};
