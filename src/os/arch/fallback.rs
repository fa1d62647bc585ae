//! The primitives of `arch` (see `mod.rs`) where there is no assembly for them: other
//! architectures, and Miri. Only builds with `std` (tests, loom models): the slot is a
//! `thread_local!`.

#[cfg(not(any(test, loom)))]
compile_error!("mapalloc builds for x86_64 and aarch64 only: see src/os/arch");

use core::cell::Cell;

std::thread_local! {
    static SLOT: Cell<*mut u8> = const { Cell::new(core::ptr::null_mut()) };
}

/// This thread's slot.
#[inline(always)]
pub fn tls_get() -> *mut u8 {
    SLOT.with(|s| s.get())
}

/// Write this thread's slot.
#[inline(always)]
pub fn tls_set(v: *mut u8) {
    SLOT.with(|s| s.set(v))
}

/// No cheap clock: always 0 (see [`cheap_ticks_per_check`]).
#[inline(always)]
pub fn cheap_clock() -> u64 {
    0
}

/// 0: there is no cheap clock, callers ration by other means.
#[inline(always)]
pub fn cheap_ticks_per_check() -> u64 {
    0
}

/// No prefetch.
#[inline(always)]
pub fn prefetch(_p: *const u8) {}

/// `x`, through `black_box`.
#[inline(always)]
pub fn opaque(x: usize) -> usize {
    core::hint::black_box(x)
}

/// A plain 16-byte integer.
pub type Chunk16 = u128;
