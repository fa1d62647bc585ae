//! OS layer: the only module that calls `mmap`, `munmap`, `mprotect`, `madvise`, `mremap`
//! and `sysconf`. Every other module asks for memory by *effect*.
//!
//! # Contract of every primitive
//! - Addresses passed in are aligned to the OS page size ([`page_size`]); lengths are non-zero
//!   multiples of it. Callers guarantee this; debug builds assert it.
//! - Mappings are anonymous and private. Fresh memory reads as zero.
//! - Running out of memory (`ENOMEM`, which the kernel also returns when a process would exceed
//!   `vm.max_map_count`) is reported as a null pointer or `false`; the caller turns it into a
//!   failed allocation. Any other failure means the allocator's own bookkeeping is wrong, so it
//!   is fatal: one line on stderr written with `write(2)`, then `abort()`.
//! - Nothing here allocates, formats or panics: these functions run inside `malloc`.
//! - The caller's `errno` is left as it was, on success and on a refusal reported as null or
//!   `false` alike: `free` ends in some of these calls, and `free` must not change `errno`
//!   (an `mprotect` that cannot split a mapping at `vm.max_map_count` used to leave `ENOMEM`).
//!
//! - Guards are made by one helper, [`guard`] (guard markers, `mprotect` as the fallback;
//!   many at once with [`guard_many`] and [`guard_pair`]), and
//!   guarded ranges are laid out by one helper, [`map_guarded`].
//! - Purges of many ranges are gathered in a [`PurgeBatch`] and given back with one
//!   vectored call (`process_madvise`) where the kernel allows it.
//!
//! Each syscall is counted (relaxed atomic increments; a syscall costs far more) so that the
//! statistics and the benchmarks can report syscalls per operation.
//!
//! # Files
//! Only these files call the kernel:
//! - `posix.rs`: what is the same on every system here: `map`, `map_aligned`, `protect_*`,
//!   `release`, `map_guarded`/`reserve_guarded` (built on the system's `guard_pair`),
//!   [`PurgeBatch`] (built on the system's `purge` and `purge_vectored`), the page size, the
//!   syscall counters, `errno`.
//! - `linux.rs` and `freebsd.rs`: each system's `errno_location`, `purge`, `purge_vectored`,
//!   guards (`guard`, `guard_pair`, `guard_many`, `guard_markers`), `map_aligned_exact`,
//!   `remap_to`, `map_wipe_on_fork`, thread ids and liveness, `random_u64`, `now_ms`; the
//!   FreeBSD file's header compares the two call by call. `freebsd_flags.rs` holds its flag
//!   arithmetic, built and tested on Linux too.
//! - `report.rs`: messages and reports (`write`, `fcntl`, `fstat`, `open`), and the private
//!   copy of stderr they fall back to when the program has closed fd 2.
//! - `arch/`: what the processor gives without the kernel, the only code that names an
//!   architecture (`x86_64.rs`, `aarch64.rs`; `fallback.rs` for tests elsewhere and Miri):
//!   the thread's slot [`tls_get`]/[`tls_set`] (initial-exec TLS), the cheap clock
//!   [`cheap_clock`] with [`cheap_ticks_per_check`], [`prefetch`], [`opaque`], [`Chunk16`],
//!   and the body of the cdylib's `operator new` trampolines (`__tail_call_new!`). Its module
//!   doc states what each promises.
//!
//! No module outside this folder names an operating system or an architecture: what differs
//! reaches the upper layers as one of the capabilities below or as one of these functions.
//!
//! # Capabilities the upper layers rely on
//! - `purge` frees the pages at once and they read zero afterwards (both systems), locked
//!   memory included (`mlockall`: on Linux `MADV_DONTNEED_LOCKED`, which keeps the range
//!   locked, so that pages touched again are resident again; see `linux.rs`'s `purge_locked`
//!   for kernels before 5.18);
//! - `guard_markers()`: guards split no mapping (Linux 6.13+); when false, each guard costs
//!   mappings against the budget (FreeBSD, older Linux);
//! - `remap_to` may say no (always on FreeBSD): callers then copy;
//! - `cheap_ticks_per_check()` is 0 where there is no cheap clock (only tests on other
//!   architectures): callers then ration by call count;
//! - the OS page size is whatever [`page_size`] says at run time (4, 16 or 64 KiB), never a
//!   constant.

mod arch;
pub use arch::*;

#[cfg(target_os = "freebsd")]
mod freebsd;
#[cfg(any(target_os = "freebsd", test))]
mod freebsd_flags;
#[cfg(target_os = "linux")]
mod linux;
mod posix;
mod report;
#[cfg(test)]
mod tests;

#[cfg(target_os = "freebsd")]
pub use freebsd::*;
#[cfg(target_os = "linux")]
pub use linux::*;
pub use posix::*;
pub use report::*;
