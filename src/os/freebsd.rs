//! The OS contract (see `mod.rs`) on FreeBSD, where what differs from Linux is written
//! against FreeBSD's manual pages (`mmap(2)`, `madvise(2)`, `minherit(2)`, `thr_self(2)`,
//! `thr_kill2(2)`, `getrandom(2)`, `clock_gettime(2)`). No FreeBSD machine is available to the
//! project: this file is type-checked and linted in CI (`--target x86_64-unknown-freebsd`),
//! and its pure part, the flag arithmetic, lives in `freebsd_flags.rs`, built and unit-tested
//! on Linux too.
//!
//! | primitive | FreeBSD | Linux |
//! |---|---|---|
//! | aligned mapping without slack | `MAP_ALIGNED(log2 align)` | probe + `MAP_FIXED_NOREPLACE` |
//! | guards inside a mapping | `mprotect(PROT_NONE)` (no guard markers) | `MADV_GUARD_INSTALL` |
//! | purge that frees the pages | `mmap(MAP_FIXED)` of fresh anonymous memory over the range: the pages are freed at once and read zero (`MADV_DONTNEED` only lowers their priority, `MADV_FREE` leaves their contents undefined) | `MADV_DONTNEED` |
//! | vectored purge | none (one call per range) | `process_madvise` |
//! | moving a block's pages | none: `remap_to` says no and the caller copies | `mremap` |
//! | page wiped in the fork child | `minherit(INHERIT_ZERO)` | `MADV_WIPEONFORK` |
//! | thread ids, liveness | `getpid`, `thr_self`; `thr_kill2(pid, tid, 0)` | `gettid`; `tgkill` |
//!
//! Capabilities as the upper layers see them: purging zeroes the pages (as on Linux);
//! guards are not free of mappings (`guard_markers()` is false, as on a Linux kernel before
//! 6.13), so the mapping budget counts them; blocks never grow in place by moving pages.

use core::ptr;
use core::sync::atomic::Ordering::Relaxed;

use super::posix::*;
use super::report::fatal_errno;

/// This thread's `errno` slot (FreeBSD libc's `__error`).
#[inline]
pub(super) fn errno_location() -> *mut i32 {
    // SAFETY: no preconditions; it returns this thread's errno slot.
    unsafe { libc::__error() }
}

use super::freebsd_flags as flags;

// The flag arithmetic (tested on Linux) agrees with FreeBSD's own header.
const _: () = assert!(flags::aligned(1 << 22) == libc::MAP_ALIGNED(22));

/// Give the physical pages of `[addr, addr+len)` back at once: a fresh anonymous mapping
/// placed over the range with `MAP_FIXED` replaces the old pages (freed now; they read zero
/// afterwards) and makes the whole range read-write. Preserves `errno`.
///
/// Known gap, unlike Linux (whose `MADV_DONTNEED` keeps protections): a `PROT_NONE` part of
/// the range becomes accessible. The default mode never purges a guard (segment guards lie
/// outside the pages), but strict mode's per-page tail guards lie inside the pages its purge
/// covers, so on FreeBSD they do not survive a purge of their page.
///
/// # Safety
/// The range must be memory mapped by this allocator, read-write, and hold no live data.
pub unsafe fn purge(addr: *mut u8, len: usize) {
    check_range(addr, len);
    SYSCALLS.mmap.fetch_add(1, Relaxed);
    SYSCALLS.purged_bytes.fetch_add(len, Relaxed);
    let saved = errno();
    // SAFETY: the caller guarantees the range is ours and holds nothing live.
    let p = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        fatal_errno(
            "mapalloc: mmap(MAP_FIXED) purge failed unexpectedly",
            errno(),
        );
    }
    set_errno(saved);
}

/// FreeBSD has no vectored purge: the batch purges range by range.
///
/// # Safety
/// As for [`purge`], for every range.
pub(super) unsafe fn purge_vectored(_ranges: &[libc::iovec]) -> bool {
    false
}

/// One OS page, read-write and zeroed, that the kernel gives the child of every `fork` as
/// fresh zeroed memory (`minherit(INHERIT_ZERO)`). Null when it cannot be had.
pub fn map_wipe_on_fork() -> *mut u8 {
    let len = page_size();
    let p = map(len, true);
    if p.is_null() {
        return p;
    }
    let saved = errno();
    // SAFETY: `p` is the page just mapped, which nobody else knows about.
    let r = unsafe { libc::minherit(p.cast(), len, libc::INHERIT_ZERO) };
    set_errno(saved);
    if r != 0 {
        // SAFETY: our own fresh mapping, unused.
        unsafe { release(p, len) };
        return ptr::null_mut();
    }
    p
}

/// The calling process's id and thread id (`thr_self`).
pub fn process_and_thread_id() -> (u32, u32) {
    let mut tid: libc::c_long = 0;
    // SAFETY: getpid cannot fail; thr_self writes the id to a valid out-pointer.
    unsafe {
        libc::thr_self(&mut tid);
        (libc::getpid() as u32, tid as u32)
    }
}

/// Whether thread `tid` of process `pid` is gone (`thr_kill2(pid, tid, 0)` fails with
/// `ESRCH`); anything else counts as alive, as on Linux.
pub fn thread_gone(pid: u32, tid: u32) -> bool {
    let saved = errno();
    // SAFETY: signal 0 only checks that the thread exists; nothing is delivered.
    let r = unsafe { libc::thr_kill2(pid as libc::pid_t, tid as libc::c_long, 0) };
    let gone = r != 0 && errno() == libc::ESRCH;
    set_errno(saved);
    gone
}

/// FreeBSD has no `mremap`: never moves pages, so `realloc` of a large block copies.
///
/// # Safety
/// None needed: nothing is touched.
pub unsafe fn remap_to(_old: *mut u8, _old_len: usize, _new_len: usize, _target: *mut u8) -> bool {
    false
}

/// FreeBSD has no guard markers: every guard is a `PROT_NONE` range.
#[inline]
pub fn guard_markers() -> bool {
    false
}

/// Make `[addr, addr+len)` a guard (`PROT_NONE`); false when the kernel refused (no memory
/// for the map entry).
///
/// # Safety
/// The range must be memory mapped by this allocator and hold no live data.
pub unsafe fn guard(addr: *mut u8, len: usize) -> bool {
    if !HARDENED {
        return true;
    }
    // SAFETY: forwarded contract.
    unsafe { protect_none(addr, len) }
}

/// Two guards, one call each.
///
/// # Safety
/// As for [`guard`], for both ranges.
pub unsafe fn guard_pair(a: *mut u8, a_len: usize, b: *mut u8, b_len: usize) -> bool {
    // SAFETY: forwarded contract.
    unsafe { guard(a, a_len) && guard(b, b_len) }
}

/// Many guards, one call each.
///
/// # Safety
/// As for [`guard`], for every range.
pub unsafe fn guard_many(ranges: &[libc::iovec]) -> bool {
    ranges.iter().all(|r| {
        // SAFETY: forwarded contract.
        unsafe { guard(r.iov_base.cast(), r.iov_len) }
    })
}

/// Map exactly `len` bytes read-write aligned to `align`, without slack:
/// `MAP_ALIGNED(log2 align)` lets the kernel find such a range. Null when it cannot.
pub fn map_aligned_exact(len: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two() && align >= page_size());
    SYSCALLS.mmap.fetch_add(1, Relaxed);
    let saved = errno();
    // SAFETY: an anonymous mapping at a kernel-chosen address touches no existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON | flags::aligned(align),
            -1,
            0,
        )
    };
    set_errno(saved);
    if p == libc::MAP_FAILED {
        return ptr::null_mut();
    }
    p.cast()
}

/// `getrandom(2)` without blocking: the bytes written, or -1 with `errno` set.
pub(super) fn getrandom(buf: &mut [u8]) -> isize {
    // SAFETY: `buf` is a valid, writable buffer of `buf.len()` bytes.
    unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) }
}

/// The clock of [`now_ms`]: `CLOCK_MONOTONIC_FAST`, FreeBSD's cheap, coarse clock.
pub(super) const COARSE_CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC_FAST;
