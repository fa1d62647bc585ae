//! The OS contract (see `mod.rs`) on Linux.

use core::ptr;
use core::sync::atomic::{AtomicU8, Ordering::Relaxed};

use super::posix::*;
use super::report::fatal_errno;

/// This thread's `errno` slot (glibc's and musl's name for it).
#[inline]
pub(super) fn errno_location() -> *mut i32 {
    // SAFETY: no preconditions; it returns this thread's errno slot.
    unsafe { libc::__errno_location() }
}

/// Map exactly `len` bytes read-write at an address aligned to `align`, without
/// [`map_aligned`]'s slack: for when address space is short (`RLIMIT_AS`), where the slack
/// could be what makes the mapping fail. A probe `mmap` of `len` finds a free range; if it is
/// not aligned it is unmapped and the aligned addresses just above and just below it are
/// tried with `MAP_FIXED_NOREPLACE` (which never replaces a mapping; a kernel older than 4.17
/// takes it as a hint, and a result elsewhere is unmapped). Null when no attempt worked.
/// Three to four syscalls: callers use it only after [`map_aligned`] failed.
pub fn map_aligned_exact(len: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two() && align >= page_size());
    let raw = map(len, true);
    if raw.is_null() || raw as usize % align == 0 {
        return raw;
    }
    // SAFETY: the probe is our own fresh, unused mapping.
    unsafe { release(raw, len) };
    let down = raw as usize & !(align - 1);
    let up = down + align;
    for hint in [up, down] {
        if hint == 0 {
            continue;
        }
        let saved = errno();
        SYSCALLS.mmap.fetch_add(1, Relaxed);
        // SAFETY: MAP_FIXED_NOREPLACE fails rather than touch an existing mapping.
        let p = unsafe {
            libc::mmap(
                hint as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        set_errno(saved);
        if p == libc::MAP_FAILED {
            continue;
        }
        if p as usize == hint {
            return p.cast();
        }
        // An old kernel placed it elsewhere.
        // SAFETY: our own fresh, unused mapping.
        unsafe { release(p.cast(), len) };
    }
    ptr::null_mut()
}

/// Give the physical pages of `[addr, addr+len)` back to the kernel (`MADV_DONTNEED`); the
/// range stays mapped, keeps its protections and guard markers, and reads as zero afterwards.
///
/// Locked memory (`mlock`, or `mlockall(MCL_CURRENT | MCL_FUTURE)`, as real-time and
/// security-sensitive programs do) is refused by `MADV_DONTNEED` with `EINVAL`; see
/// [`purge_locked`] for what is done then.
///
/// # Safety
/// The range must be memory mapped by this allocator that holds no live data.
pub unsafe fn purge(addr: *mut u8, len: usize) {
    check_range(addr, len);
    SYSCALLS.madvise.fetch_add(1, Relaxed);
    SYSCALLS.purged_bytes.fetch_add(len, Relaxed);
    let saved = errno();
    // SAFETY: the caller guarantees the range is ours and holds nothing live.
    let r = unsafe { libc::madvise(addr.cast(), len, libc::MADV_DONTNEED) };
    if r != 0 {
        let e = errno();
        if e != libc::EINVAL {
            fatal_errno("mapalloc: madvise failed unexpectedly", e);
        }
        // SAFETY: forwarded contract.
        unsafe { purge_locked(addr, len) };
    }
    set_errno(saved);
}

/// [`purge`] of a range `MADV_DONTNEED` refused with `EINVAL`, which for a page-aligned range
/// of our own mappings means that some of it is locked (`VM_LOCKED`).
///
/// First `MADV_DONTNEED_LOCKED` (Linux 5.18+), made for this: the pages are freed at once and
/// read zero, protections and guard markers stay, and the range stays locked, so a page
/// touched later is faulted in and locked again (the program asked for locked memory, and
/// gets it wherever it uses memory). Before Linux 5.18, the range is replaced by a fresh
/// read-write anonymous mapping (`mmap(MAP_FIXED)`, as the purge on FreeBSD does): the old
/// pages are freed and the range reads zero; under `MCL_FUTURE` the kernel locks the new
/// mapping and faults it in at once, so the memory stays resident (zeroed), as locked memory
/// must; under `MCL_CURRENT` alone it is no longer locked. That fallback has the FreeBSD
/// purge's known gap: a `PROT_NONE` part of the range (strict mode's tail guards, made with
/// `mprotect` because guard markers are refused in locked mappings too) becomes accessible.
///
/// # Safety
/// As for [`purge`].
#[cold]
unsafe fn purge_locked(addr: *mut u8, len: usize) {
    SYSCALLS.madvise.fetch_add(1, Relaxed);
    // SAFETY: the caller guarantees the range is ours and holds nothing live.
    if unsafe { libc::madvise(addr.cast(), len, libc::MADV_DONTNEED_LOCKED) } == 0 {
        return;
    }
    let e = errno();
    if e != libc::EINVAL {
        fatal_errno(
            "mapalloc: madvise(MADV_DONTNEED_LOCKED) failed unexpectedly",
            e,
        );
    }
    SYSCALLS.mmap.fetch_add(1, Relaxed);
    // SAFETY: as above; MAP_FIXED replaces only the caller's range, which is ours.
    let p = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        fatal_errno(
            "mapalloc: mmap(MAP_FIXED) purge of locked memory failed",
            errno(),
        );
    }
}

/// Whether `process_madvise(PIDFD_SELF, ..., MADV_DONTNEED)` works: unknown, yes, or no.
static VECTORED_PURGE: AtomicU8 = AtomicU8::new(MARKERS_UNKNOWN);

/// `process_madvise(PIDFD_SELF, ranges, advice, 0)`: the bytes advised, or -1 with `errno`
/// set (the callers keep their own fallbacks and counters).
///
/// # Safety
/// Every range of `ranges` is ours and may take `advice`.
unsafe fn madvise_ranges(ranges: &[libc::iovec], advice: libc::c_int) -> libc::c_long {
    // SAFETY: per the contract; `ranges` is a valid iovec array for the duration of the call.
    unsafe {
        libc::syscall(
            libc::SYS_process_madvise,
            PIDFD_SELF,
            ranges.as_ptr(),
            ranges.len(),
            advice,
            0usize,
        )
    }
}

/// One `process_madvise(PIDFD_SELF, ranges, MADV_DONTNEED)`; false when the kernel refused
/// it or advised only part (the caller then purges range by range: purging twice is
/// harmless).
///
/// # Safety
/// As for [`purge`], for every range.
pub(super) unsafe fn purge_vectored(ranges: &[libc::iovec]) -> bool {
    if VECTORED_PURGE.load(Relaxed) == MARKERS_NO {
        return false;
    }
    let total: usize = ranges.iter().map(|r| r.iov_len).sum();
    SYSCALLS.madvise.fetch_add(1, Relaxed);
    let saved = errno();
    // SAFETY: the caller guarantees every range is ours and holds nothing live.
    let r = unsafe { madvise_ranges(ranges, libc::MADV_DONTNEED) };
    if r < 0 && !matches!(errno(), libc::ENOMEM | libc::EAGAIN | libc::EINTR) {
        // ENOSYS, EBADF (no PIDFD_SELF), EINVAL or EPERM (advice not allowed): older kernels.
        // EINVAL is also the answer for locked memory (see `purge_locked`): the vectored path
        // is then given up too, and `purge` handles each range, locked or not.
        VECTORED_PURGE.store(MARKERS_NO, Relaxed);
    }
    set_errno(saved);
    if r >= 0 && r as usize == total {
        VECTORED_PURGE.store(MARKERS_YES, Relaxed);
        SYSCALLS.purged_bytes.fetch_add(total, Relaxed);
        return true;
    }
    false
}

/// Map one OS page, read-write and zeroed, that the kernel wipes (to zero again) in the child
/// of every `fork`, including forks that run no `pthread_atfork` handlers (`_Fork`, raw
/// `clone`): `MADV_WIPEONFORK`, Linux 4.14 and later. Null when the kernel cannot do it.
pub fn map_wipe_on_fork() -> *mut u8 {
    let len = page_size();
    let p = map(len, true);
    if p.is_null() {
        return p;
    }
    SYSCALLS.madvise.fetch_add(1, Relaxed);
    let saved = errno();
    // SAFETY: `p` is the page just mapped, which nobody else knows about.
    let r = unsafe { libc::madvise(p.cast(), len, libc::MADV_WIPEONFORK) };
    set_errno(saved);
    if r != 0 {
        // An old kernel (EINVAL): the caller does without.
        // SAFETY: our own fresh mapping, unused.
        unsafe { release(p, len) };
        return ptr::null_mut();
    }
    p
}

/// The calling process's id (`getpid`, the thread group id) and thread id (`gettid`).
pub fn process_and_thread_id() -> (u32, u32) {
    // SAFETY: getpid and gettid cannot fail and touch no memory.
    unsafe {
        (
            libc::syscall(libc::SYS_getpid) as u32,
            libc::syscall(libc::SYS_gettid) as u32,
        )
    }
}

/// Whether the kernel knows no thread `tid` in process `pid` any more (`tgkill(pid, tid, 0)`
/// fails with `ESRCH`). A thread the kernel no longer knows runs no code, ever again; a thread
/// id can be reused by a later thread, in which case this says "alive" (the safe answer).
/// Any other failure (`EPERM` under a seccomp policy, say) also counts as alive.
pub fn thread_gone(pid: u32, tid: u32) -> bool {
    let saved = errno();
    // SAFETY: signal 0 only checks that the thread exists; nothing is delivered.
    let r = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            pid as libc::c_long,
            tid as libc::c_long,
            0,
        )
    };
    let gone = r != 0 && errno() == libc::ESRCH;
    set_errno(saved);
    gone
}

/// Move or resize the mapping `[old, old+old_len)` to `new_len` bytes placed exactly at
/// `target` (`MREMAP_MAYMOVE | MREMAP_FIXED`), without copying: the kernel moves the page
/// tables. Whatever was mapped at `[target, target+new_len)` is replaced. Grown parts read as
/// zero. Returns false when the kernel has no memory for it or `old` is not a single mapping
/// (the old mapping is then intact).
///
/// # Safety
/// Both ranges must belong to this allocator; `old` holds one block's pages only.
pub unsafe fn remap_to(old: *mut u8, old_len: usize, new_len: usize, target: *mut u8) -> bool {
    check_range(old, old_len);
    check_range(target, new_len);
    SYSCALLS.mremap.fetch_add(1, Relaxed);
    let saved = errno();
    // SAFETY: the caller guarantees both ranges are ours.
    let p = unsafe {
        libc::mremap(
            old.cast(),
            old_len,
            new_len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            target,
        )
    };
    if p == libc::MAP_FAILED {
        let e = errno();
        // EFAULT: the old range is not one mapping. It always is for the blocks mapped here,
        // but with guard markers neighbouring blocks share mappings, so rather than trust the
        // kernel's merging rules, let the caller copy instead.
        if e == libc::ENOMEM || e == libc::EAGAIN || e == libc::EFAULT {
            set_errno(saved);
            return false;
        }
        fatal_errno("mapalloc: mremap failed unexpectedly", e);
    }
    set_errno(saved);
    true
}

/// `madvise` advice of Linux 6.13 (`include/uapi/asm-generic/mman-common.h`), not yet in
/// every version of the `libc` crate: install *guard markers* in the page tables of a range.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// What the kernel said to guard markers: not tried yet, accepted, or refused (`EINVAL`).
const MARKERS_UNKNOWN: u8 = 0;
const MARKERS_YES: u8 = 1;
const MARKERS_NO: u8 = 2;
static MARKERS: AtomicU8 = AtomicU8::new(MARKERS_UNKNOWN);

/// Whether guards are made with guard markers (see [`guard`]); false once the kernel refused
/// them. Until the first guard is installed the answer is optimistic.
#[inline]
pub fn guard_markers() -> bool {
    MARKERS.load(Relaxed) != MARKERS_NO
}

/// Make `[addr, addr+len)` a guard: any access faults with `SIGSEGV`. The one helper every
/// guard goes through.
///
/// It installs guard markers with `madvise(MADV_GUARD_INSTALL)` (Linux 6.13+): page-table
/// entries that fault on access *without* splitting the mapping, so a guard costs no entry
/// against `vm.max_map_count` and guarded blocks mapped next to each other merge into one
/// mapping. The kernel keeps the markers through `MADV_DONTNEED` (the purge), `fork` and
/// `mremap` (they move with the page tables; the allocator only ever moves the usable part),
/// and `munmap` removes them. Where the kernel refuses markers (`EINVAL`: a kernel before
/// 6.13, or a mapping locked by `mlockall(MCL_FUTURE)`), the range is made `PROT_NONE` with
/// `mprotect` instead, which splits the mapping, and later guards go straight to `mprotect`.
/// False when the kernel has no memory for it (`ENOMEM`, e.g. at `vm.max_map_count`).
///
/// # Safety
/// The range must be memory mapped by this allocator that holds no live data (its contents
/// are discarded).
pub unsafe fn guard(addr: *mut u8, len: usize) -> bool {
    if !HARDENED {
        return true;
    }
    check_range(addr, len);
    if guard_markers() {
        SYSCALLS.madvise.fetch_add(1, Relaxed);
        let saved = errno();
        // SAFETY: the caller guarantees the range is ours and holds nothing live.
        let r = unsafe { libc::madvise(addr.cast(), len, MADV_GUARD_INSTALL) };
        if r == 0 {
            MARKERS.store(MARKERS_YES, Relaxed);
            return true;
        }
        let e = errno();
        set_errno(saved);
        match e {
            libc::EINVAL => MARKERS.store(MARKERS_NO, Relaxed),
            // Installing markers allocates page tables.
            libc::ENOMEM | libc::EAGAIN => return false,
            _ => fatal_errno(
                "mapalloc: madvise(MADV_GUARD_INSTALL) failed unexpectedly",
                e,
            ),
        }
    }
    // SAFETY: forwarded contract.
    unsafe { protect_none(addr, len) }
}

/// `PIDFD_SELF` (Linux 6.15): a pidfd argument meaning "the calling process", with no file
/// descriptor to open (and for the program to close behind our back).
const PIDFD_SELF: libc::c_int = -10000;

/// Whether `process_madvise(PIDFD_SELF, ...)` installs markers: unknown, yes, or no.
static VECTORED: AtomicU8 = AtomicU8::new(MARKERS_UNKNOWN);

/// Make two ranges guards, as [`guard`] does for each, with one syscall where the kernel
/// allows it (see [`guard_many`]). A guarded block then costs what it cost with `mprotect`:
/// one `mmap` and one call.
///
/// # Safety
/// As for [`guard`], for both ranges.
pub unsafe fn guard_pair(a: *mut u8, a_len: usize, b: *mut u8, b_len: usize) -> bool {
    let iov = [
        libc::iovec {
            iov_base: a.cast(),
            iov_len: a_len,
        },
        libc::iovec {
            iov_base: b.cast(),
            iov_len: b_len,
        },
    ];
    // SAFETY: forwarded contract.
    unsafe { guard_many(&iov) }
}

/// Make every range of `ranges` a guard, as [`guard`] does for each, with one syscall where
/// the kernel allows it: `process_madvise(PIDFD_SELF, ranges, MADV_GUARD_INSTALL)` (Linux
/// 6.15+; at most `UIO_MAXIOV`, 1024, ranges). When the kernel refuses that call, or advised
/// only part, falls back to [`guard`] for each range (installing a marker twice is harmless).
///
/// # Safety
/// As for [`guard`], for every range.
pub unsafe fn guard_many(ranges: &[libc::iovec]) -> bool {
    if HARDENED && guard_markers() && VECTORED.load(Relaxed) != MARKERS_NO {
        let mut total = 0;
        for r in ranges {
            check_range(r.iov_base.cast(), r.iov_len);
            total += r.iov_len;
        }
        SYSCALLS.madvise.fetch_add(1, Relaxed);
        let saved = errno();
        // SAFETY: the caller guarantees every range is ours and holds nothing live.
        let r = unsafe { madvise_ranges(ranges, MADV_GUARD_INSTALL) };
        if r >= 0 && r as usize == total {
            VECTORED.store(MARKERS_YES, Relaxed);
            MARKERS.store(MARKERS_YES, Relaxed);
            return true;
        }
        if r < 0 {
            match errno() {
                libc::ENOMEM | libc::EAGAIN => {
                    set_errno(saved);
                    return false;
                }
                // Older kernels: no such syscall (ENOSYS), no PIDFD_SELF (EBADF), advice not
                // allowed (EINVAL, EPERM). `guard` finds out what works on its own.
                _ => VECTORED.store(MARKERS_NO, Relaxed),
            }
        }
        set_errno(saved);
    }
    ranges.iter().all(|r| {
        // SAFETY: forwarded contract.
        unsafe { guard(r.iov_base.cast(), r.iov_len) }
    })
}

/// `getrandom(2)` without blocking, through the raw syscall (a glibc older than 2.25 has no
/// wrapper): the bytes written, or -1 with `errno` set.
pub(super) fn getrandom(buf: &mut [u8]) -> isize {
    // SAFETY: `buf` is a valid, writable buffer of `buf.len()` bytes.
    unsafe {
        libc::syscall(
            libc::SYS_getrandom,
            buf.as_mut_ptr(),
            buf.len(),
            libc::GRND_NONBLOCK,
        ) as isize
    }
}

/// The clock of [`now_ms`]: `CLOCK_MONOTONIC_COARSE`, a vDSO read with no syscall and a
/// resolution of a few milliseconds.
pub(super) const COARSE_CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC_COARSE;
