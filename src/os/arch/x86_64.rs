//! The processor primitives of `arch` (see `mod.rs`) on x86-64.

// The slot of `tls_get`/`tls_set`, in `.tbss`: hidden, so that a program that links mapalloc
// as its Rust global allocator *and* preloads `libmapalloc.so` gets two independent slots.
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

/// This thread's slot: its offset from the thread pointer comes from the GOT
/// (`sym@gottpoff`), then one `%fs`-relative load. Two instructions, no call.
#[inline(always)]
pub fn tls_get() -> *mut u8 {
    let v: *mut u8;
    // SAFETY: reads this thread's 8-byte `.tbss` slot through its initial-exec offset; the
    // slot exists for every thread and starts out zero.
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

/// Write this thread's slot (see [`tls_get`]).
#[inline(always)]
pub fn tls_set(v: *mut u8) {
    // SAFETY: writes this thread's slot (see `tls_get`).
    unsafe {
        core::arch::asm!(
            "mov {t}, qword ptr [rip + __mapalloc_tls_heap_v0@GOTTPOFF]",
            "mov qword ptr fs:[{t}], {v}",
            t = out(reg) _,
            v = in(reg) v,
            options(nostack, preserves_flags),
        );
    }
}

/// The time-stamp counter (`rdtsc`, one instruction). Every x86-64 processor has it; on
/// those of the last fifteen years it is invariant (a constant rate, the nominal frequency,
/// whatever the core's clock does) and the kernel keeps it in step across cores.
#[inline(always)]
pub fn cheap_clock() -> u64 {
    // SAFETY: rdtsc is available on every x86-64 processor and has no preconditions.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// 2^20 time-stamp ticks: about 0.3 ms at 3 GHz (0.25 to 1 ms for nominal frequencies of 1
/// to 4 GHz).
#[inline(always)]
pub fn cheap_ticks_per_check() -> u64 {
    1 << 20
}

/// Start loading the cache line at `p` into every cache level (`prefetcht0`).
#[inline(always)]
pub fn prefetch(p: *const u8) {
    use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe { _mm_prefetch(p as *const i8, _MM_HINT_T0) };
}

/// A 16-byte SSE register: a volatile write of it is one `movaps`/`movups`.
pub type Chunk16 = core::arch::x86_64::__m128i;

/// The body of a naked C++ `operator new` trampoline of the cdylib (a tail jump to `$f`,
/// which takes `(size, align)`): `zero_align` clears the second argument register first (the
/// variants without an alignment argument), `keep_align` passes it on. Here because the
/// cdylib names no architecture.
#[doc(hidden)]
#[macro_export]
macro_rules! __tail_call_new {
    (zero_align, $f:path) => {
        core::arch::naked_asm!("xor esi, esi", "jmp {f}", f = sym $f)
    };
    (keep_align, $f:path) => {
        core::arch::naked_asm!("jmp {f}", f = sym $f)
    };
}
