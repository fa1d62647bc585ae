//! mapalloc: a hardened size-class memory allocator for Linux.
//!
//! Use it as the Rust global allocator:
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: mapalloc::MapAlloc = mapalloc::MapAlloc;
//! ```
//!
//! or preload `libmapalloc.so` (the `cdylib/` crate) into any program.
//!
//! # Glossary
//! - **OS page**: the kernel's page (`sysconf(_SC_PAGESIZE)`), the unit of `mmap`/`mprotect`.
//! - **Block**: what `malloc` returns. Blocks of one *size class* all have the class's size.
//! - **Page**: a run of memory (64 KiB, 512 KiB or a whole segment) holding blocks of one
//!   class, with a descriptor in its segment's metadata. Not an OS page.
//! - **Segment**: a 4 MiB-aligned 4 MiB mapping holding metadata, guards and pages, owned by
//!   one heap. Its base, and so its metadata, follows from any address inside it.
//! - **Heap**: a thread's allocator state: per-class queues of pages it owns.
//! - **Local / remote free**: a free by the block's owning thread (plain list push) or by
//!   another thread (atomic push on the page's remote-free list, collected by the owner).
//! - **Large block**: a request of `size_class::LARGE_FROM` bytes or more (above 64 KiB), mapped on
//!   its own between two guard pages, at the end of its pages.
//! - **Guard**: memory that faults when touched: guard markers (`MADV_GUARD_INSTALL`), or
//!   `PROT_NONE` where the kernel has none (see `os::guard`).
//!
//! # Layers (each uses only the ones below it)
//! `global` / `c_api` → `alloc` → `heap` → `segment` / `large` → `os`, with `size_class`,
//! `sync` and `init` beside them; `zero` (zero-size slots, used by `alloc` and `heap`) and
//! `emergency` (the segment in `.bss`, used by `segment`) sit just above `os`. In strict mode
//! `alloc` hands every call to `strict`, which uses `heap`, `segment` and `large`; `heap`
//! calls back into it where a page's free list or the quarantine changes hands (strict mode
//! keeps its own lists in the heap's pages). With `MAPALLOC_PROF`, `alloc` also tells `prof`
//! (beside `strict`) of every allocation and free; `prof` keeps its per-thread countdown in the
//! heap and its per-page sample count in the page descriptor. `segment` and `large` call nothing above them:
//! what they must know of the mode comes down as a value (`segment::alloc`'s `tail_guards`),
//! what the layer above must do after them goes up as a return value (`large::free` says when
//! it cached a block, whose decay the heap schedules), and a segment's owning heap is an
//! opaque `segment::Owner`. Only `os` calls `mmap`, `munmap`, `mprotect`, `madvise` and
//! `mremap`, and only `os` names an operating system or an architecture (`os/arch` holds the
//! processor's part: the TLS slot, the cheap clock, prefetches); what differs reaches the
//! other layers as a named capability of its contract.
//!
//! # The rule of every path
//! No path of the allocator allocates, formats, panics or unwinds: it runs inside `malloc`
//! of programs that may be in any state. Errors are a null return or a one-line message
//! written with `write(2)` followed by `abort()`.

#![deny(unsafe_op_in_unsafe_fn)]
// Only `core` is used (the allocator may not allocate, format or unwind anyway), so that the
// preloaded library links no `std`: its panic machinery (backtrace symbolisation, demangling,
// decompression) was 3/4 of `libmapalloc.so`'s text and pulled in `libgcc_s.so.1`, and the
// text pages a program touches (with the kernel's fault-around, whole 64 KiB windows of
// them) count in its resident set. Tests and loom models use `std`.
#![cfg_attr(not(any(test, loom)), no_std)]

mod alloc;
pub mod c_api;
mod config;
mod emergency;
mod global;
mod heap;
mod init;
mod large;
mod os;
mod prof;
#[cfg(loom)]
#[doc(hidden)]
pub mod remote;
#[cfg(not(loom))]
mod remote;
mod segment;
mod size_class;
mod stats;
mod strict;
mod sync;
mod tls;
mod zero;

pub use config::{Config, ConfigError};
pub use global::MapAlloc;
pub use prof::DumpError;
pub use stats::{ClassStats, Stats};

/// Choose settings in code (the same as the `MAPALLOC_*` environment variables, which it
/// overrides); fields left `None` keep their current value. Call it before the first
/// allocation to be sure every setting applies from the start (`main` may be too late for a
/// global allocator: use it as early as possible); `strict` is refused once any block was
/// handed out. Never allocates.
pub fn configure(c: &Config) -> Result<(), ConfigError> {
    config::apply(c)
}

/// The settings in effect (after the environment was read).
pub fn config() -> Config {
    config::current()
}

/// Give memory back to the OS now (what `malloc_trim(0)` does): the calling thread's free
/// pages, those of exited threads' heaps, the empty-segment cache and the large-block cache are
/// purged or unmapped. Other live threads' free pages are theirs alone; they purge them on their
/// own schedule (`MAPALLOC_PURGE_DELAY_MS`). Returns the bytes released. Never allocates.
pub fn trim() -> usize {
    heap::trim()
}

/// Write the live heap now, as the profile at exit is written (`MAPALLOC_PROF=1` or `leaks`;
/// the README's "Heap profiles and leaks"): to the file `path` names (`%p`: the process id), in
/// the gperftools heap-profile format that `pprof` and `mapalloc-prof` read. Never allocates;
/// other threads' sampling waits while it writes.
pub fn profile_dump(path: &str) -> Result<(), DumpError> {
    prof::dump(path.as_bytes())
}

/// A snapshot of mapalloc's counters (allocations, live bytes, mapped memory, syscalls).
/// Never allocates.
pub fn stats() -> Stats {
    stats::summary()
}

/// Usable size of a live block: at least the size requested, and every byte of it may be
/// used. Aborts the process for a pointer that is not a live block of mapalloc's.
///
/// # Safety
/// `ptr` is null (gives 0) or a pointer returned by mapalloc and not yet freed.
pub unsafe fn usable_size(ptr: *const u8) -> usize {
    // SAFETY: forwarded contract.
    unsafe { alloc::usable_size(ptr) }
}
