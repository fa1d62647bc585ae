//! C semantics: the behaviour of `malloc`, `free`, `calloc`, `realloc` & co. as glibc programs
//! expect it, under prefixed, testable names. The `cdylib/` crate exports the standard symbols
//! as one-line forwards into these functions; nothing here is exported by itself, so a Rust
//! program that links mapalloc as its global allocator does not replace the process's malloc.
//!
//! The rules (see `include/mapalloc.h`):
//! - every result is 16-byte aligned; `malloc(0)` returns a unique pointer that can be freed,
//!   to no memory: any access through it faults (see `zero`);
//! - every null return sets `errno` to `ENOMEM`, or `EINVAL` for a bad alignment;
//!   `posix_memalign` returns the code instead and leaves `*memptr` untouched;
//! - `free` never changes `errno`; `free(NULL)` does nothing;
//! - `calloc` and `reallocarray` check the multiplication for overflow;
//! - `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p` and returns null (as glibc);
//!   a failed `realloc` leaves the old block intact;
//! - `aligned_alloc` and `memalign` take alignments as glibc 2.36 does: 16 or less (0 too)
//!   is `malloc`, one that is not a power of two is rounded up to the next, and only one above
//!   `SIZE_MAX / 2 + 1` is `EINVAL`; `posix_memalign` needs a power of two that is a multiple
//!   of `sizeof(void *)` (else `EINVAL`); `valloc` and `pvalloc`
//!   page-align, `pvalloc` rounds the size up to whole pages (`pvalloc(0)` is one page);
//! - `malloc_usable_size(NULL)` is 0, and every byte it reports may be used;
//! - heap misuse (double free, invalid pointer) aborts with one line on stderr.

use core::ffi::c_void;

use crate::stats::{self, summary};
use crate::{alloc, heap, os, size_class};

#[inline]
fn set_errno(e: i32) {
    os::set_errno(e);
}

#[inline]
fn enomem_if_null(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// `malloc`.
#[inline]
pub fn malloc(size: usize) -> *mut c_void {
    enomem_if_null(alloc::malloc(size))
}

/// `calloc`.
#[inline]
pub fn calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => enomem_if_null(alloc::malloc_zeroed(total, size_class::MIN_ALIGN)),
        None => {
            set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// `free`.
///
/// # Safety
/// `p` is null or a live block from this allocator (anything else aborts when detected).
#[inline]
pub unsafe fn free(p: *mut c_void) {
    // SAFETY: forwarded contract. The OS layer preserves errno across its syscalls.
    unsafe { alloc::free(p.cast(), 0) }
}

/// `free_sized` (C23): `size` must not exceed the block's size.
///
/// # Safety
/// As [`free`], and `size` is the size the block was allocated with.
#[inline]
pub unsafe fn free_sized(p: *mut c_void, size: usize) {
    // SAFETY: forwarded contract.
    unsafe { alloc::free(p.cast(), size) }
}

/// `free_aligned_sized` (C23).
///
/// # Safety
/// As [`free_sized`], and `align` is the alignment the block was allocated with.
#[inline]
pub unsafe fn free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
    if !p.is_null() && align.is_power_of_two() && (p as usize) % align != 0 {
        os::fatal_ptr(
            "free_aligned_sized with an alignment the block lacks at",
            p as usize,
        );
    }
    // SAFETY: forwarded contract.
    unsafe { alloc::free(p.cast(), size) }
}

/// The sized and aligned C++ `operator delete` forms: see [`alloc::free_exact`] (0 for a
/// size or alignment the form does not pass).
///
/// # Safety
/// As [`free_sized`], and `align` is the alignment the block was allocated with.
#[inline]
pub unsafe fn cxx_delete(p: *mut c_void, size: usize, align: usize) {
    // SAFETY: forwarded contract.
    unsafe { alloc::free_exact(p.cast(), size, align) }
}

/// `realloc`.
///
/// # Safety
/// `p` is null or a live block from this allocator.
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // glibc frees the block and returns NULL (without touching errno).
        // SAFETY: forwarded contract.
        unsafe { free(p) };
        return core::ptr::null_mut();
    }
    // SAFETY: forwarded contract.
    enomem_if_null(unsafe { alloc::realloc(p.cast(), size, size_class::MIN_ALIGN) })
}

/// `reallocarray`.
///
/// # Safety
/// As [`realloc`].
pub unsafe fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// `posix_memalign`: returns 0, `EINVAL` or `ENOMEM`; `*memptr` is written only on success.
///
/// # Safety
/// `memptr` is valid for a pointer-sized write.
pub unsafe fn posix_memalign(memptr: *mut *mut c_void, align: usize, size: usize) -> i32 {
    if !align.is_power_of_two() || align % core::mem::size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    let p = alloc::malloc_aligned(size, align);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller guarantees `memptr` is writable.
    unsafe { *memptr = p.cast() };
    0
}

/// The alignment glibc's `memalign` (2.36, which `aligned_alloc` shares) serves for `align`:
/// one of at most 16 (0 included) is plain `malloc`'s, one that is not a power of two is
/// rounded up to the next; `None` (`EINVAL`) only above `SIZE_MAX / 2 + 1`, where there is no
/// next power of two.
fn glibc_alignment(align: usize) -> Option<usize> {
    if align <= size_class::MIN_ALIGN {
        Some(size_class::MIN_ALIGN)
    } else {
        align.checked_next_power_of_two()
    }
}

/// `aligned_alloc`: glibc 2.36's rules (see [`glibc_alignment`]); an alignment that cannot be
/// served (2^62, say) is `ENOMEM`.
pub fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    let Some(align) = glibc_alignment(align) else {
        set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    };
    enomem_if_null(alloc::malloc_aligned(size, align))
}

/// `memalign`: as [`aligned_alloc`].
pub fn memalign(align: usize, size: usize) -> *mut c_void {
    aligned_alloc(align, size)
}

/// `valloc`: page-aligned.
pub fn valloc(size: usize) -> *mut c_void {
    enomem_if_null(alloc::malloc_aligned(size, os::page_size()))
}

/// `pvalloc`: page-aligned, size rounded up to whole pages (at least one).
pub fn pvalloc(size: usize) -> *mut c_void {
    let Some(rounded) = os::page_round_up(size.max(1)) else {
        set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    };
    enomem_if_null(alloc::malloc_aligned(rounded, os::page_size()))
}

/// `malloc_usable_size`: 0 for null; aborts for a pointer that is not a live block.
///
/// # Safety
/// `p` is null or a live block from this allocator.
pub unsafe fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: forwarded contract.
    unsafe { alloc::usable_size(p as *const u8) }
}

/// `malloc_trim`: give back now everything releasable that this thread can reach safely (see
/// [`crate::trim`]); `pad` is ignored (nothing is kept at a heap top). Returns 1 if anything
/// was released.
pub fn malloc_trim(_pad: usize) -> i32 {
    let released = heap::trim();
    (released > 0) as i32
}

/// The panic handler of a build without `std` (the preloaded library): a panic is a bug in
/// mapalloc, reported as `mapalloc: internal error: panic` and an abort. The message is not
/// formatted: that could allocate, from inside the allocator.
#[cold]
pub fn panicked() -> ! {
    os::internal("panic")
}

/// glibc's `struct mallinfo2`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Mallinfo2 {
    pub arena: usize,
    pub ordblks: usize,
    pub smblks: usize,
    pub hblks: usize,
    pub hblkhd: usize,
    pub usmblks: usize,
    pub fsmblks: usize,
    pub uordblks: usize,
    pub fordblks: usize,
    pub keepcost: usize,
}

/// glibc's `struct mallinfo` (`int` fields).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Mallinfo {
    pub arena: i32,
    pub ordblks: i32,
    pub smblks: i32,
    pub hblks: i32,
    pub hblkhd: i32,
    pub usmblks: i32,
    pub fsmblks: i32,
    pub uordblks: i32,
    pub fordblks: i32,
    pub keepcost: i32,
}

/// `mallinfo2`: `arena` is the bytes of segments mapped, `hblks`/`hblkhd` the live large
/// blocks' count and bytes, `uordblks` the bytes allocated in size classes plus large blocks,
/// `fordblks` the rest of the segments, `keepcost` the cached large bytes.
pub fn mallinfo2() -> Mallinfo2 {
    let s = summary();
    let in_use = s.small_live_bytes + s.large_live_bytes;
    Mallinfo2 {
        arena: s.segment_bytes as usize,
        ordblks: 0,
        smblks: 0,
        hblks: s.large_allocs.saturating_sub(s.large_frees) as usize,
        hblkhd: s.large_live_bytes as usize,
        usmblks: 0,
        fsmblks: 0,
        uordblks: in_use as usize,
        fordblks: s.segment_bytes.saturating_sub(s.small_live_bytes) as usize,
        keepcost: s.large_cached_bytes as usize,
    }
}

/// `mallinfo`: as [`mallinfo2`], each field clamped to `int`.
pub fn mallinfo() -> Mallinfo {
    let m = mallinfo2();
    let c = |v: usize| v.min(i32::MAX as usize) as i32;
    Mallinfo {
        arena: c(m.arena),
        ordblks: c(m.ordblks),
        smblks: c(m.smblks),
        hblks: c(m.hblks),
        hblkhd: c(m.hblkhd),
        usmblks: c(m.usmblks),
        fsmblks: c(m.fsmblks),
        uordblks: c(m.uordblks),
        fordblks: c(m.fordblks),
        keepcost: c(m.keepcost),
    }
}

/// glibc's `mallopt` parameters (`<malloc.h>`).
pub mod m {
    pub const MXFAST: i32 = 1;
    pub const NLBLKS: i32 = 2;
    pub const GRAIN: i32 = 3;
    pub const KEEP: i32 = 4;
    pub const TRIM_THRESHOLD: i32 = -1;
    pub const TOP_PAD: i32 = -2;
    pub const MMAP_THRESHOLD: i32 = -3;
    pub const MMAP_MAX: i32 = -4;
    pub const CHECK_ACTION: i32 = -5;
    pub const PERTURB: i32 = -6;
    pub const ARENA_TEST: i32 = -7;
    pub const ARENA_MAX: i32 = -8;
}

/// `mallopt`: 1 for a parameter of glibc's `<malloc.h>` with a value glibc 2.36 accepts, 0
/// for any other parameter or value. mapalloc honours none of them: its design has no
/// fastbins, arenas, heap top or `mmap` threshold to tune, and its own settings are the
/// `MAPALLOC_*` variables. The README lists each parameter and what mapalloc does instead.
/// The one value glibc 2.36 refuses, and so does this: `M_MXFAST` outside 0..=160 (its
/// largest fastbin size on 64-bit systems).
pub fn mallopt(param: i32, value: i32) -> i32 {
    let ok = match param {
        m::MXFAST => (0..=160).contains(&value),
        m::NLBLKS | m::GRAIN | m::KEEP => true,
        m::TRIM_THRESHOLD | m::TOP_PAD | m::MMAP_THRESHOLD | m::MMAP_MAX => true,
        m::CHECK_ACTION | m::PERTURB | m::ARENA_TEST | m::ARENA_MAX => true,
        _ => false,
    };
    ok as i32
}

/// `malloc_info`: mapalloc's statistics as glibc's XML (`<malloc version="1">`, one
/// `<heap nr="0">` for all of mapalloc's memory, then the process totals), written to `fp`
/// with `fwrite`. `options` must be 0: otherwise -1 with `errno` `EINVAL`, as the manual page
/// says (glibc 2.36 itself returns `EINVAL` and leaves `errno`); 0 on success, -1 (errno from
/// stdio) when writing failed.
///
/// The fields, in glibc's terms: `<sizes>` is empty (mapalloc keeps no count of free blocks
/// by size; `mapalloc_stats_print` shows its classes); `total type="rest"` is the free space
/// of segments plus freed large blocks kept for reuse (`count`: cached segments and cached
/// large blocks), `total type="mmap"` the live large blocks, `system` the bytes that may be
/// resident (`max` the same: no peak is kept), `aspace total` every byte mapped (reservations
/// included) and `aspace mprotect` the mapped bytes that are not guards.
///
/// # Safety
/// `fp` is a valid, open `FILE *`.
pub unsafe fn malloc_info(options: i32, fp: *mut libc::FILE) -> i32 {
    if options != 0 || fp.is_null() {
        set_errno(libc::EINVAL);
        return -1;
    }
    let s = summary();
    let large_live = s.large_allocs.saturating_sub(s.large_frees);
    let rest_count = s.segments_cached + s.large_blocks.saturating_sub(large_live);
    let rest_size = s.segment_bytes.saturating_sub(s.small_live_bytes) + s.large_cached_bytes;
    let accessible = s.mapped_bytes.saturating_sub(s.guard_bytes);
    let put = |l: &os::Line| -> bool {
        let b = l.as_bytes();
        // SAFETY: `b` is valid for `b.len()` bytes; the caller guarantees `fp`.
        unsafe { libc::fwrite(b.as_ptr().cast(), 1, b.len(), fp) == b.len() }
    };
    let total = |l: &mut os::Line, kind: &str, count: u64, size: u64| {
        l.str("<total type=\"")
            .str(kind)
            .str("\" count=\"")
            .dec(count)
            .str("\" size=\"")
            .dec(size)
            .str("\"/>\n");
    };
    let sized = |l: &mut os::Line, tag: &str, kind: &str, size: u64| {
        l.str("<")
            .str(tag)
            .str(" type=\"")
            .str(kind)
            .str("\" size=\"")
            .dec(size)
            .str("\"/>\n");
    };
    // The `system` and `aspace` lines, the same for the heap and the totals.
    let sizes = |end: &str| {
        let mut l = os::Line::new();
        sized(&mut l, "system", "current", s.committed_bytes);
        sized(&mut l, "system", "max", s.committed_bytes);
        sized(&mut l, "aspace", "total", s.mapped_bytes);
        sized(&mut l, "aspace", "mprotect", accessible);
        l.str(end);
        l
    };
    let mut ok = true;
    let mut l = os::Line::new();
    l.str("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n</sizes>\n");
    total(&mut l, "fast", 0, 0);
    total(&mut l, "rest", rest_count, rest_size);
    ok &= put(&l);
    ok &= put(&sizes("</heap>\n"));
    let mut l = os::Line::new();
    total(&mut l, "fast", 0, 0);
    total(&mut l, "rest", rest_count, rest_size);
    total(&mut l, "mmap", large_live, s.large_live_bytes);
    ok &= put(&l);
    ok &= put(&sizes("</malloc>\n"));
    if ok { 0 } else { -1 }
}

/// `mapalloc_profile_dump`: write the live heap now (see [`crate::profile_dump`]) to the file
/// `path` names (`%p`: the process id), or, for a null `path`, to the profile's own file name
/// followed by `.<n>`. 0 on success; -1 with `errno` set otherwise: `EINVAL` when profiling is
/// off (`MAPALLOC_PROF`), else why the file could not be written.
///
/// # Safety
/// `path` is null or a NUL-terminated string.
pub unsafe fn profile_dump(path: *const libc::c_char) -> i32 {
    let r = if path.is_null() {
        crate::prof::dump_numbered()
    } else {
        // SAFETY: per the contract.
        crate::prof::dump(unsafe { core::ffi::CStr::from_ptr(path) }.to_bytes())
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            os::set_errno(match e {
                crate::prof::DumpError::Off => libc::EINVAL,
                crate::prof::DumpError::Io(e) => e,
            });
            -1
        }
    }
}

/// Print a short summary to stderr (`malloc_stats`, `mapalloc_stats_print`).
pub fn stats_print() {
    stats::print();
}

/// Print the summary at exit when `MAPALLOC_STATS` (or [`crate::configure`]) asks for it: to
/// the file `MAPALLOC_STATS_FILE` names when set (created now, so a forked child writes its
/// own under `%p`), else to stderr.
pub extern "C" fn exit_report() {
    crate::config::load();
    crate::prof::at_exit();
    if !crate::config::stats_at_exit() {
        return;
    }
    let mut name = [0u8; os::PATH_MAX];
    let file = crate::config::stats_file(&mut name)
        .and_then(|n| os::create_report_file(name.get(..n).unwrap_or(&[])));
    match file {
        Some(fd) => {
            stats::print_to(os::Sink::Fd(fd));
            os::close_report_file(fd);
        }
        None => stats_print(),
    }
}

/// Runs [`exit_report`] when the process exits (or the library is unloaded), for both faces:
/// an entry of `.fini_array` needs no registration, which could allocate.
#[used]
#[unsafe(link_section = ".fini_array")]
static EXIT_REPORT: extern "C" fn() = exit_report;
