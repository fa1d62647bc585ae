//! The processor primitives of `arch` (see `mod.rs`) on AArch64 (ELF TLS variant I: the
//! thread pointer `tpidr_el0` points at a 16-byte thread control block, and the static TLS
//! blocks follow it; the offset of our slot from it is a link-time or load-time constant).

// The slot of `tls_get`/`tls_set`, in `.tbss`: hidden, so that a program that links mapalloc
// as its Rust global allocator *and* preloads `libmapalloc.so` gets two independent slots.
core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",%nobits",
    ".p2align 3",
    ".globl __mapalloc_tls_heap_v0",
    ".hidden __mapalloc_tls_heap_v0",
    ".type __mapalloc_tls_heap_v0, %object",
    ".size __mapalloc_tls_heap_v0, 8",
    "__mapalloc_tls_heap_v0:",
    ".zero 8",
    ".popsection",
);

/// This thread's slot, with the initial-exec sequence: the slot's offset from the thread
/// pointer is loaded from the GOT (`adrp`/`ldr` of `:gottprel:`, relocations the linker
/// relaxes to an immediate in an executable), the thread pointer read from `tpidr_el0`, then
/// one load. Four instructions, no call.
#[inline(always)]
pub fn tls_get() -> *mut u8 {
    let v: *mut u8;
    // SAFETY: reads this thread's 8-byte `.tbss` slot through its initial-exec offset; the
    // slot exists for every thread and starts out zero.
    unsafe {
        core::arch::asm!(
            "adrp {o}, :gottprel:__mapalloc_tls_heap_v0",
            "ldr {o}, [{o}, #:gottprel_lo12:__mapalloc_tls_heap_v0]",
            "mrs {v}, tpidr_el0",
            "ldr {v}, [{v}, {o}]",
            o = out(reg) _,
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
            "adrp {o}, :gottprel:__mapalloc_tls_heap_v0",
            "ldr {o}, [{o}, #:gottprel_lo12:__mapalloc_tls_heap_v0]",
            "mrs {t}, tpidr_el0",
            "str {v}, [{t}, {o}]",
            o = out(reg) _,
            t = out(reg) _,
            v = in(reg) v,
            options(nostack, preserves_flags),
        );
    }
}

/// The virtual count of the generic timer (`cntvct_el0`), which Linux and FreeBSD let user
/// space read: a 56- to 64-bit count that rises at the fixed frequency of `cntfrq_el0`
/// (system-wide and unrelated to the cores' clocks: 1 GHz on Armv8.6 and later processors,
/// commonly 19.2 to 100 MHz on older ones, 62.5 MHz under QEMU), monotonic and in step
/// across cores. No `isb` before it: an early read by a few cycles does not matter here.
#[inline(always)]
pub fn cheap_clock() -> u64 {
    let t: u64;
    // SAFETY: reading cntvct_el0 has no side effect; the kernel enables it for EL0 (where an
    // erratum forbids direct reads, it traps the instruction and emulates it).
    unsafe {
        core::arch::asm!("mrs {t}, cntvct_el0", t = out(reg) t, options(nomem, nostack, preserves_flags));
    }
    t
}

/// `cntfrq_el0 / 4096`: the ticks of [`cheap_clock`] in about 0.25 ms, whatever the
/// timer's frequency (at least 1, should a firmware leave `cntfrq_el0` unset).
#[inline(always)]
pub fn cheap_ticks_per_check() -> u64 {
    let f: u64;
    // SAFETY: reading cntfrq_el0 has no side effect and is allowed at EL0 wherever
    // cntvct_el0 is.
    unsafe {
        core::arch::asm!("mrs {f}, cntfrq_el0", f = out(reg) f, options(nomem, nostack, preserves_flags));
    }
    (f >> 12).max(1)
}

/// Start loading the cache line at `p` into the level-1 cache, for reading (`prfm pldl1keep`).
#[inline(always)]
pub fn prefetch(p: *const u8) {
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        core::arch::asm!("prfm pldl1keep, [{p}]", p = in(reg) p, options(nostack, readonly, preserves_flags));
    }
}

/// A 16-byte NEON register: a volatile write of it is one `str q`.
pub type Chunk16 = core::arch::aarch64::uint8x16_t;

/// The body of a naked C++ `operator new` trampoline of the cdylib (see the x86-64 file):
/// `x1` is the second argument register.
#[doc(hidden)]
#[macro_export]
macro_rules! __tail_call_new {
    (zero_align, $f:path) => {
        core::arch::naked_asm!("mov x1, #0", "b {f}", f = sym $f)
    };
    (keep_align, $f:path) => {
        core::arch::naked_asm!("b {f}", f = sym $f)
    };
}
