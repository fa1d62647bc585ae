//! The part of the OS contract (see `mod.rs`) that is the same on every POSIX system of
//! the contract: anonymous private mappings, protections, unmapping, guarded ranges built
//! on the system's own guard primitive (`guard_pair`, `guard_markers`), and the counters.
//! The system files (`linux.rs`, `freebsd.rs`) hold what differs.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::report::{fatal, fatal_errno};
use super::{guard_markers, guard_pair, purge, purge_vectored};

/// The calling thread's `errno`.
#[inline]
pub fn errno() -> i32 {
    // SAFETY: the system's errno location is always a valid pointer to this thread's errno.
    unsafe { *super::errno_location() }
}

/// Set the calling thread's `errno`.
#[inline]
pub fn set_errno(v: i32) {
    // SAFETY: as in `errno`.
    unsafe { *super::errno_location() = v }
}

/// Syscall counters, by kind.
pub(crate) struct SyscallCounts {
    pub mmap: AtomicUsize,
    pub munmap: AtomicUsize,
    pub mprotect: AtomicUsize,
    pub madvise: AtomicUsize,
    pub mremap: AtomicUsize,
    /// Bytes given back with `purge` (cumulative).
    pub purged_bytes: AtomicUsize,
}

pub(crate) static SYSCALLS: SyscallCounts = SyscallCounts {
    mmap: AtomicUsize::new(0),
    munmap: AtomicUsize::new(0),
    mprotect: AtomicUsize::new(0),
    madvise: AtomicUsize::new(0),
    mremap: AtomicUsize::new(0),
    purged_bytes: AtomicUsize::new(0),
};

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The OS page size, read once with `sysconf(_SC_PAGESIZE)` and cached. Never assumed to be
/// 4096 (arm64 and ppc64 kernels use 16 KiB and 64 KiB pages).
#[inline]
pub fn page_size() -> usize {
    let ps = PAGE_SIZE.load(Relaxed);
    if ps != 0 {
        return ps;
    }
    page_size_slow()
}

#[cold]
fn page_size_slow() -> usize {
    let ps = kernel_page_size();
    #[cfg(test)]
    let ps = test_page_size(ps);
    PAGE_SIZE.store(ps, Relaxed);
    ps
}

/// The kernel's page size, `sysconf(_SC_PAGESIZE)`.
fn kernel_page_size() -> usize {
    // SAFETY: sysconf has no preconditions and does not allocate.
    let ps = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if ps <= 0 || (ps as usize) & (ps as usize - 1) != 0 {
        fatal("mapalloc: sysconf(_SC_PAGESIZE) gave no usable page size");
    }
    ps as usize
}

/// Unit tests only (`cargo test --lib`): `MAPALLOC_TEST_PAGE_SIZE=65536` makes the whole
/// crate see a larger OS page than the kernel's, as on an arm64 or ppc64 kernel built with
/// 64 KiB pages. That is sound on a 4 KiB kernel because every range the crate hands to
/// `mmap`, `mprotect`, `madvise` or `munmap` is then a multiple of the larger page, which the
/// kernel takes as a run of its own pages, and [`map`] aligns its mappings to the larger
/// page (see `map_test_page_aligned`). It shows that no layer assumes 4 KiB (layouts,
/// guards, rounding, the segment and large-block arithmetic); it cannot show what only a
/// real 64 KiB kernel does (faults, fault-around and resident sizes in 64 KiB units, where a
/// 4 KiB write dirties a whole page). A size that is not a power of two multiple of the
/// kernel's page is refused.
#[cfg(test)]
fn test_page_size(kernel: usize) -> usize {
    let Some(v) = std::env::var_os("MAPALLOC_TEST_PAGE_SIZE") else {
        return kernel;
    };
    let ps: usize = v
        .to_str()
        .and_then(|s| s.parse().ok())
        .expect("MAPALLOC_TEST_PAGE_SIZE: a number of bytes");
    assert!(
        ps.is_power_of_two() && ps >= kernel,
        "MAPALLOC_TEST_PAGE_SIZE={ps}: a power of two, at least the kernel's page ({kernel})"
    );
    ps
}

/// [`map`] when the test page size is larger than the kernel's: `len` bytes at an address
/// aligned to the test page, the slack around it unmapped.
#[cfg(test)]
fn map_test_page_aligned(len: usize, rw: bool) -> *mut u8 {
    let (ps, kernel) = (page_size(), kernel_page_size());
    let raw = map_kernel_aligned(len + ps - kernel, rw);
    if raw.is_null() {
        return raw;
    }
    let start = (raw as usize + ps - 1) & !(ps - 1);
    let (head, tail) = (start - raw as usize, ps - kernel - (start - raw as usize));
    // SAFETY: the slack before and after the aligned part is our fresh, unused mapping.
    unsafe {
        if head != 0 && libc::munmap(raw.cast(), head) != 0 {
            fatal("mapalloc: munmap of test alignment slack failed");
        }
        if tail != 0 && libc::munmap((start + len) as *mut libc::c_void, tail) != 0 {
            fatal("mapalloc: munmap of test alignment slack failed");
        }
    }
    start as *mut u8
}

/// Round `n` up to a multiple of the OS page size; `None` on overflow.
#[inline]
pub fn page_round_up(n: usize) -> Option<usize> {
    let ps = page_size();
    Some(n.checked_add(ps - 1)? & !(ps - 1))
}

#[inline]
pub(super) fn check_range(addr: *mut u8, len: usize) {
    debug_assert!(
        len != 0 && len % page_size() == 0,
        "os: length not page-granular"
    );
    debug_assert!(
        addr as usize % page_size() == 0,
        "os: address not page-aligned"
    );
}

/// Map `len` bytes, readable and writable when `rw`, else `PROT_NONE` (a reservation).
/// Null when the kernel has no memory (or no mapping slot) left.
///
/// No `MAP_NORESERVE`: writable memory is charged against the kernel's overcommit policy when
/// it is mapped or made writable (`mprotect`), so an absurd request such as 64 TiB fails with
/// `ENOMEM` as it does under glibc instead of succeeding and faulting later. A `PROT_NONE`
/// reservation is not charged until it is opened.
///
/// The caller's `errno` is preserved on success: `malloc` may set `errno` only on failure.
pub fn map(len: usize, rw: bool) -> *mut u8 {
    debug_assert!(
        len != 0 && len % page_size() == 0,
        "os: length not page-granular"
    );
    #[cfg(test)]
    if page_size() != kernel_page_size() {
        return map_test_page_aligned(len, rw);
    }
    map_kernel_aligned(len, rw)
}

/// [`map`] at whatever address the kernel chooses (aligned to the kernel's page).
fn map_kernel_aligned(len: usize, rw: bool) -> *mut u8 {
    let prot = if rw {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_NONE
    };
    let saved = errno();
    SYSCALLS.mmap.fetch_add(1, Relaxed);
    // SAFETY: an anonymous private mapping at a kernel-chosen address touches no existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        let e = errno();
        if e == libc::ENOMEM || e == libc::EAGAIN || e == libc::EOVERFLOW || e == libc::EINVAL {
            // EINVAL: a length the kernel cannot represent; EOVERFLOW likewise. Both mean the
            // request cannot be served, which is the same to the caller as no memory.
            return ptr::null_mut();
        }
        fatal_errno("mapalloc: mmap failed unexpectedly", e);
    }
    set_errno(saved);
    p.cast()
}

/// Map `len` bytes read-write at an address aligned to `align` (a power of two, at least the
/// page size) with one `mmap`: maps `len + align - page` bytes and returns the aligned start
/// inside. The slack before and after it (`align - page` bytes together) stays mapped and is
/// never touched, so it is never resident; trimming it would cost two `munmap`s per call, so
/// callers map many aligned units at once (see `segment`'s arenas) to keep it small. The
/// slack goes when the ranges around it are unmapped, or with the process.
///
/// Returns the aligned start and the whole mapping (to unmap all of it when the caller
/// cannot use it after all), or null and an empty range when out of memory.
pub fn map_aligned(len: usize, align: usize) -> (*mut u8, (*mut u8, usize)) {
    debug_assert!(align.is_power_of_two() && align >= page_size());
    let Some(total) = len.checked_add(align - page_size()) else {
        return (ptr::null_mut(), (ptr::null_mut(), 0));
    };
    let raw = map(total, true);
    if raw.is_null() {
        return (raw, (raw, 0));
    }
    let start = (raw as usize + align - 1) & !(align - 1);
    (start as *mut u8, (raw, total))
}

/// Whether the process runs under a finite address-space limit (`RLIMIT_AS`), where address
/// space reserved but unused counts as much as memory in use. One `getrlimit`; callers ask
/// only on slow paths that map memory anyway.
pub fn address_space_limited() -> bool {
    let saved = errno();
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid out-pointer.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) } == 0;
    set_errno(saved);
    ok && r.rlim_cur != libc::RLIM_INFINITY
}

/// Make `[addr, addr+len)` inaccessible (`PROT_NONE`): the fallback of [`guard`], and strict
/// mode's way to fence memory whose pages must stay resident (a guard marker discards them).
///
/// # Safety
/// The range must be memory mapped by this allocator and hold no live data.
pub unsafe fn protect_none(addr: *mut u8, len: usize) -> bool {
    check_range(addr, len);
    SYSCALLS.mprotect.fetch_add(1, Relaxed);
    let saved = errno();
    // SAFETY: the caller guarantees the range is ours and holds nothing live.
    let r = unsafe { libc::mprotect(addr.cast(), len, libc::PROT_NONE) };
    mprotect_result(r, saved)
}

/// Make `[addr, addr+len)` readable and writable (open a reservation, or strict mode's
/// fences again).
///
/// # Safety
/// The range must be memory mapped by this allocator.
pub unsafe fn protect_rw(addr: *mut u8, len: usize) -> bool {
    check_range(addr, len);
    SYSCALLS.mprotect.fetch_add(1, Relaxed);
    let saved = errno();
    // SAFETY: the caller guarantees the range is ours.
    let r = unsafe { libc::mprotect(addr.cast(), len, libc::PROT_READ | libc::PROT_WRITE) };
    mprotect_result(r, saved)
}

/// The outcome of an `mprotect`, with the caller's `errno` (`saved`) put back either way: a
/// refusal is reported as `false` alone, so that `free`, which may end here, leaves `errno`
/// as it found it.
fn mprotect_result(r: i32, saved: i32) -> bool {
    let e = errno();
    set_errno(saved);
    if r == 0 {
        return true;
    }
    if e == libc::ENOMEM {
        // Splitting a mapping would exceed vm.max_map_count.
        return false;
    }
    fatal_errno("mapalloc: mprotect failed unexpectedly", e);
}

/// Unmap `[addr, addr+len)`.
///
/// # Safety
/// The range must be memory mapped by this allocator (or a hole inside such a range) and
/// nothing may use it afterwards.
pub unsafe fn release(addr: *mut u8, len: usize) {
    check_range(addr, len);
    SYSCALLS.munmap.fetch_add(1, Relaxed);
    let saved = errno();
    // SAFETY: the caller guarantees the range is ours and dead.
    let r = unsafe { libc::munmap(addr.cast(), len) };
    if r != 0 {
        // munmap can fail with ENOMEM when unmapping the middle of a mapping would exceed
        // vm.max_map_count. Purging keeps the memory usage promise; the address space stays.
        if errno() == libc::ENOMEM {
            // SAFETY: same range, same contract.
            unsafe { purge(addr, len) };
        } else {
            fatal_errno("mapalloc: munmap failed unexpectedly", errno());
        }
    }
    set_errno(saved);
}

/// Whether default hardening is compiled in. Only the measurement build (cargo feature
/// `unhardened`) turns it off: no guards, no live-block bitmap, no misuse checks.
pub const HARDENED: bool = !cfg!(feature = "unhardened");

/// Map `[ret - guard, ret + usable + guard)` with `ret` aligned to `align` (a power of two;
/// anything up to the page size means page alignment), unmapping the alignment slack around
/// it; `rw` as for [`map`]. Null when out of memory or address space.
fn map_around(usable: usize, guard: usize, align: usize, rw: bool) -> *mut u8 {
    let ps = page_size();
    let align = align.max(ps);
    let Some(total) = guard
        .checked_mul(2)
        .and_then(|g| g.checked_add(usable))
        .and_then(|t| t.checked_add(align - ps))
    else {
        return ptr::null_mut();
    };
    let base = map(total, rw) as usize;
    if base == 0 {
        return ptr::null_mut();
    }
    let user = (base + guard + align - 1) & !(align - 1);
    let head = user - guard - base;
    let tail_start = user + usable + guard;
    let tail = base + total - tail_start;
    // SAFETY: the alignment slack before the front guard and after the back guard is part of
    // our fresh mapping and holds nothing.
    unsafe {
        if head != 0 {
            release(base as *mut u8, head);
        }
        if tail != 0 {
            release(tail_start as *mut u8, tail);
        }
    }
    user as *mut u8
}

/// Map `usable` bytes read-write, aligned to `align`, with a guard of `guard` bytes (a
/// multiple of the page size, possibly 0) directly before and after: the one helper that lays
/// out guarded ranges. Returns the start of the usable part, or null when out of memory
/// (nothing stays mapped then).
///
/// With guard markers: one read-write mapping and one `process_madvise` call (two `madvise`
/// calls before Linux 6.15), and the result is a single mapping that may even merge with its
/// neighbours. Without them: one `PROT_NONE`
/// reservation whose middle is opened with `mprotect` (three mappings). Plus up to two
/// `munmap`s of alignment slack.
pub fn map_guarded(usable: usize, guard: usize, align: usize) -> *mut u8 {
    if guard == 0 || guard_markers() {
        let user = map_around(usable, guard, align, true);
        if user.is_null() || guard == 0 {
            return user;
        }
        // SAFETY: both guards lie inside the fresh mapping just made and hold nothing.
        let ok = unsafe { guard_pair(user.sub(guard), guard, user.add(usable), guard) };
        if !ok {
            // SAFETY: the whole mapping is ours and unused.
            unsafe { release(user.sub(guard), usable + 2 * guard) };
            return ptr::null_mut();
        }
        return user;
    }
    let user = map_around(usable, guard, align, false);
    if user.is_null() {
        return user;
    }
    // SAFETY: [user, user + usable) is the middle of the reservation just made.
    if !unsafe { protect_rw(user, usable) } {
        // SAFETY: the whole reservation is ours and unused.
        unsafe { release(user.sub(guard), usable + 2 * guard) };
        return ptr::null_mut();
    }
    user
}

/// As [`map_guarded`], for a range whose middle will be replaced at once with [`remap_to`]:
/// without guard markers the middle is left `PROT_NONE` (not charged to the overcommit
/// budget; `mremap` brings its own protection), with them it is the same as `map_guarded`.
pub fn reserve_guarded(usable: usize, guard: usize, align: usize) -> *mut u8 {
    if guard == 0 || guard_markers() {
        map_guarded(usable, guard, align)
    } else {
        map_around(usable, guard, align, false)
    }
}

/// Most ranges one [`PurgeBatch`] gathers before it gives them back (well below the kernel's
/// `UIO_MAXIOV` of 1024; 1 KiB of stack).
const PURGE_BATCH: usize = 64;

/// Ranges to [`purge`], gathered so that a purge of many scattered free pages (a heap's
/// decay, a thread's exit) costs one syscall instead of one per run of pages where the system
/// has a vectored call (`purge_vectored`: Linux 6.15's `process_madvise`); otherwise, or
/// when refused, one purge per range. Adjacent
/// ranges are merged. Lives on the stack of the purging thread; nothing is purged until
/// [`PurgeBatch::flush`] (or the batch fills up, or is dropped), so the owner must flush
/// before any gathered range may be reused or leaves its hands.
pub struct PurgeBatch {
    iov: [libc::iovec; PURGE_BATCH],
    len: usize,
}

impl PurgeBatch {
    pub const fn new() -> PurgeBatch {
        PurgeBatch {
            iov: [libc::iovec {
                iov_base: ptr::null_mut(),
                iov_len: 0,
            }; PURGE_BATCH],
            len: 0,
        }
    }

    /// Add `[addr, addr+len)` to the ranges to purge.
    ///
    /// # Safety
    /// As for [`purge`], from now until the batch is flushed: the range is memory mapped by
    /// this allocator, holds no live data, and nobody else uses it meanwhile.
    pub unsafe fn add(&mut self, addr: *mut u8, len: usize) {
        check_range(addr, len);
        if let Some(last) = self.len.checked_sub(1).and_then(|i| self.iov.get_mut(i)) {
            if last.iov_base as usize + last.iov_len == addr as usize {
                last.iov_len += len;
                return;
            }
        }
        if self.len == PURGE_BATCH {
            self.flush();
        }
        if let Some(slot) = self.iov.get_mut(self.len) {
            *slot = libc::iovec {
                iov_base: addr.cast(),
                iov_len: len,
            };
            self.len += 1;
        }
    }

    /// Purge every range gathered so far.
    pub fn flush(&mut self) {
        let ranges = self.iov.get(..self.len).unwrap_or(&[]);
        self.len = 0;
        match ranges {
            [] => {}
            // SAFETY: `add`'s contract holds until now.
            [one] => unsafe { purge(one.iov_base.cast(), one.iov_len) },
            _ => {
                // SAFETY: as above, for every range.
                if !unsafe { purge_vectored(ranges) } {
                    for r in ranges {
                        // SAFETY: as above.
                        unsafe { purge(r.iov_base.cast(), r.iov_len) };
                    }
                }
            }
        }
    }
}

impl Default for PurgeBatch {
    fn default() -> Self {
        PurgeBatch::new()
    }
}

impl Drop for PurgeBatch {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Bytes of one guard: one OS page, or nothing in the `unhardened` measurement build.
#[inline]
pub fn guard_size() -> usize {
    if HARDENED { page_size() } else { 0 }
}

/// 64 random bits from the kernel (the system's `getrandom`, non-blocking), for per-process
/// secrets.
/// Very early in boot the entropy pool may not be ready, or the syscall may be missing (old
/// kernels, seccomp filters): the clock and address-space layout are mixed instead, which
/// still differs from run to run under ASLR. Preserves `errno`.
pub fn random_u64() -> u64 {
    let saved = errno();
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        let n = super::getrandom(buf.get_mut(got..).unwrap_or(&mut []));
        if n > 0 {
            got += n as usize;
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            break;
        }
    }
    set_errno(saved);
    let v = u64::from_ne_bytes(buf);
    if got == buf.len() && v != 0 {
        return v;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let mut x = (ts.tv_nsec as u64) ^ ((ts.tv_sec as u64) << 32) ^ (&raw const ts as u64);
    x ^= (random_u64 as fn() -> u64 as usize as u64).rotate_left(17);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) | 1
}

/// Milliseconds of the system's coarse monotonic clock (`COARSE_CLOCK`: no syscall on Linux,
/// a resolution of a few milliseconds), never 0. The clock of the purge decay.
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the coarse monotonic clock always exists.
    unsafe { libc::clock_gettime(super::COARSE_CLOCK, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1000)
        .wrapping_add(ts.tv_nsec as u64 / 1_000_000)
        .max(1)
}

/// Run `handler` when signal `sig` arrives (`sigaction` with `SA_RESTART`, so interrupted
/// calls of the program go on). False when `sig` cannot be caught.
pub fn on_signal(sig: i32, handler: extern "C" fn(libc::c_int)) -> bool {
    let saved = errno();
    // SAFETY: all-zero bytes are a valid `sigaction` (empty mask, no flags).
    let mut sa: libc::sigaction = unsafe { core::mem::zeroed() };
    sa.sa_sigaction = handler as usize;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa` is initialised; the handler is an `extern "C"` function that never
    // unwinds.
    let r = unsafe { libc::sigaction(sig, &sa, core::ptr::null_mut()) };
    set_errno(saved);
    r == 0
}
