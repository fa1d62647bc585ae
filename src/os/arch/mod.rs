//! What the upper layers need of the processor, behind one set of names: the files here are
//! the only code of the crate that names an architecture (`x86_64.rs`, `aarch64.rs`; each
//! serves Linux and FreeBSD alike, whose ELF thread-local-storage ABIs agree). Every
//! architecture file provides the same items:
//!
//! - `tls_get()`, `tls_set(v)`: the calling thread's one pointer-sized slot (see `crate::tls`
//!   for why it exists), read and written with the initial-exec TLS sequence: no call, a
//!   hidden symbol in `.tbss`, zero in every new thread;
//! - `cheap_clock()` and `cheap_ticks_per_check()`: a counter read with one unprivileged
//!   instruction, monotonic on the calling thread, of no fixed unit, and how many of its ticks
//!   make a few tenths of a millisecond (the interval that rations the purge deadline's
//!   check, see `heap::give_back`, which needs nothing more of it);
//! - `prefetch(p)`: a hint to start loading the cache line at `p` for reading; it never
//!   faults, whatever `p` is;
//! - `opaque(x)`: `x`, hidden from the optimiser (an empty `asm!` statement), so that it
//!   cannot specialise code on a value it knows;
//! - `Chunk16`: a 16-byte type whose `write_volatile` is one vector store (zeroing of small
//!   blocks in strict mode).
//!
//! Other architectures build only for tests (`std` is there), with a `thread_local!` slot,
//! no cheap clock (`cheap_ticks_per_check()` is 0: callers ration by call count instead), and
//! plain fallbacks for the rest; the library itself (no `std`) refuses to build for them.
//! Miri, which runs no inline assembly, uses those fallbacks too.

#[cfg(all(target_arch = "aarch64", not(miri)))]
mod aarch64;
#[cfg(all(target_arch = "aarch64", not(miri)))]
pub use aarch64::*;
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod x86_64;
#[cfg(all(target_arch = "x86_64", not(miri)))]
pub use x86_64::*;

/// `x`, hidden from the optimiser: it cannot branch on a value it knows nothing of. The same
/// empty `asm!` statement on every architecture that has inline assembly here.
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri)))]
#[inline(always)]
pub fn opaque(mut x: usize) -> usize {
    // SAFETY: an empty instruction sequence that leaves the register as it is.
    unsafe {
        core::arch::asm!("/* {0} */", inout(reg) x, options(pure, nomem, nostack, preserves_flags));
    }
    x
}

#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri))))]
mod fallback;
#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri))))]
pub use fallback::*;
