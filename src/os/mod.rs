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
//! The implementation for each system lives in a file of its own beside this one; only those
//! files call the kernel. `report.rs` beside them writes messages and reports with POSIX
//! calls that every system shares (`write`, `fcntl`, `fstat`, `open`), and keeps the private
//! copy of stderr they fall back to when the program has closed fd 2.

mod linux;
mod report;

pub use linux::*;
pub use report::*;
