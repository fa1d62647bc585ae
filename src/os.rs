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
//!
//! Each syscall is counted (relaxed atomic increments; a syscall costs far more) so that the
//! statistics and the benchmarks can report syscalls per operation.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

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
    // SAFETY: sysconf has no preconditions and does not allocate.
    let ps = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if ps <= 0 || (ps as usize) & (ps as usize - 1) != 0 {
        fatal("mapalloc: sysconf(_SC_PAGESIZE) gave no usable page size");
    }
    PAGE_SIZE.store(ps as usize, Relaxed);
    ps as usize
}

/// Round `n` up to a multiple of the OS page size; `None` on overflow.
#[inline]
pub fn page_round_up(n: usize) -> Option<usize> {
    let ps = page_size();
    Some(n.checked_add(ps - 1)? & !(ps - 1))
}

#[inline]
fn check_range(addr: *mut u8, len: usize) {
    debug_assert!(
        len != 0 && len % page_size() == 0,
        "os: length not page-granular"
    );
    debug_assert!(
        addr as usize % page_size() == 0,
        "os: address not page-aligned"
    );
}

#[inline]
fn errno() -> i32 {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

#[inline]
fn set_errno(v: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = v }
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
/// page size). Maps `len + align` bytes and unmaps the unaligned head and the tail.
pub fn map_aligned(len: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two() && align >= page_size());
    let Some(total) = len.checked_add(align) else {
        return ptr::null_mut();
    };
    let raw = map(total, true);
    if raw.is_null() {
        return raw;
    }
    let start = (raw as usize + align - 1) & !(align - 1);
    let head = start - raw as usize;
    let tail = total - head - len;
    // SAFETY: [raw, raw+head) and [start+len, raw+total) lie inside the mapping just made and
    // nobody else knows about them.
    unsafe {
        if head != 0 {
            release(raw, head);
        }
        if tail != 0 {
            release((start + len) as *mut u8, tail);
        }
    }
    start as *mut u8
}

/// Make `[addr, addr+len)` inaccessible (`PROT_NONE`): a guard. Its pages are given back to
/// the kernel too (a guard never holds data).
///
/// # Safety
/// The range must be memory mapped by this allocator that holds no live data.
pub unsafe fn protect_none(addr: *mut u8, len: usize) -> bool {
    check_range(addr, len);
    SYSCALLS.mprotect.fetch_add(1, Relaxed);
    // SAFETY: the caller guarantees the range is ours and holds nothing live.
    let r = unsafe { libc::mprotect(addr.cast(), len, libc::PROT_NONE) };
    mprotect_result(r)
}

/// Make `[addr, addr+len)` readable and writable (open a guard or a reservation).
///
/// # Safety
/// The range must be memory mapped by this allocator.
pub unsafe fn protect_rw(addr: *mut u8, len: usize) -> bool {
    check_range(addr, len);
    SYSCALLS.mprotect.fetch_add(1, Relaxed);
    // SAFETY: the caller guarantees the range is ours.
    let r = unsafe { libc::mprotect(addr.cast(), len, libc::PROT_READ | libc::PROT_WRITE) };
    mprotect_result(r)
}

fn mprotect_result(r: i32) -> bool {
    if r == 0 {
        return true;
    }
    let e = errno();
    if e == libc::ENOMEM {
        // Splitting a mapping would exceed vm.max_map_count.
        return false;
    }
    fatal_errno("mapalloc: mprotect failed unexpectedly", e);
}

/// Give the physical pages of `[addr, addr+len)` back to the kernel (`MADV_DONTNEED`); the
/// range stays mapped and reads as zero afterwards.
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
        fatal_errno("mapalloc: madvise failed unexpectedly", errno());
    }
    set_errno(saved);
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

/// Move or resize the mapping `[old, old+old_len)` to `new_len` bytes placed exactly at
/// `target` (`MREMAP_MAYMOVE | MREMAP_FIXED`), without copying: the kernel moves the page
/// tables. Whatever was mapped at `[target, target+new_len)` is replaced. Grown parts read as
/// zero. Returns false when the kernel has no memory for it (the old mapping is then intact).
///
/// # Safety
/// Both ranges must belong to this allocator; `old` must be a single mapping.
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
        if e == libc::ENOMEM || e == libc::EAGAIN {
            set_errno(saved);
            return false;
        }
        fatal_errno("mapalloc: mremap failed unexpectedly", e);
    }
    set_errno(saved);
    true
}

/// Reserve `[ret - guard, ret + usable + guard)` as `PROT_NONE`, with `ret` aligned to `align`
/// (a power of two; anything up to the page size means page alignment): the one helper that
/// lays out guarded ranges. Nothing is accessible yet; [`map_guarded`] opens the middle, and
/// `large` moves pages into it with [`remap_to`]. Null when out of address space.
pub fn reserve_guarded(usable: usize, guard: usize, align: usize) -> *mut u8 {
    let ps = page_size();
    let align = align.max(ps);
    let Some(total) = guard
        .checked_mul(2)
        .and_then(|g| g.checked_add(usable))
        .and_then(|t| t.checked_add(align - ps))
    else {
        return ptr::null_mut();
    };
    let base = map(total, false) as usize;
    if base == 0 {
        return ptr::null_mut();
    }
    let user = (base + guard + align - 1) & !(align - 1);
    let head = user - guard - base;
    let tail_start = user + usable + guard;
    let tail = base + total - tail_start;
    // SAFETY: the alignment slack before the front guard and after the back guard is part of
    // our fresh reservation and holds nothing.
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

/// Map `usable` bytes read-write, aligned to `align`, with a `PROT_NONE` guard of `guard`
/// bytes directly before and after (see [`reserve_guarded`]). Returns the start of the usable
/// part, or null when out of memory (nothing stays mapped then).
///
/// One `PROT_NONE` reservation and one `mprotect` of the middle (plus up to two `munmap`s of
/// alignment slack): two syscalls and three mappings in the common case.
pub fn map_guarded(usable: usize, guard: usize, align: usize) -> *mut u8 {
    let user = reserve_guarded(usable, guard, align);
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

/// Milliseconds of `CLOCK_MONOTONIC_COARSE` (a vDSO read, no syscall; resolution of a few
/// milliseconds), never 0. The clock of the purge decay.
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the coarse monotonic clock always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1000)
        .wrapping_add(ts.tv_nsec as u64 / 1_000_000)
        .max(1)
}

/// Write `msg` to stderr with `write(2)`: no allocation, no formatting machinery.
pub fn write_stderr(msg: &[u8]) {
    let mut rest = msg;
    while !rest.is_empty() {
        // SAFETY: writing from a valid slice to fd 2.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return;
        }
        rest = rest.get(n as usize..).unwrap_or(&[]);
    }
}

/// A fixed-capacity line buffer on the stack for messages built without allocating.
pub struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    pub const fn new() -> Line {
        Line {
            buf: [0; 256],
            len: 0,
        }
    }

    /// Append one byte; bytes beyond the buffer are dropped.
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        for &b in s.as_bytes() {
            self.byte(b);
        }
        self
    }

    /// Append raw bytes (e.g. a value read from the environment).
    pub fn bytes(&mut self, s: &[u8]) -> &mut Self {
        for &b in s {
            self.byte(b);
        }
        self
    }

    pub fn dec(&mut self, mut v: u64) -> &mut Self {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for &b in tmp.get(i..).unwrap_or(&[]) {
            self.byte(b);
        }
        self
    }

    pub fn hex(&mut self, v: usize) -> &mut Self {
        self.str("0x");
        let digits = b"0123456789abcdef";
        let mut started = false;
        for shift in (0..usize::BITS / 4).rev() {
            let d = (v >> (shift * 4)) & 0xf;
            if d != 0 || started || shift == 0 {
                started = true;
                self.byte(digits[d & 0xf]);
            }
        }
        self
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    pub fn write(&self) {
        write_stderr(self.as_bytes());
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

/// Abort the process after printing `msg` and a newline on stderr.
#[cold]
pub fn fatal(msg: &str) -> ! {
    let mut l = Line::new();
    l.str(msg).str("\n").write();
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// Abort on a broken internal invariant (a bug in mapalloc, never the caller's misuse):
/// `mapalloc: internal error: <what>`. Used instead of indexing panics, which would run the
/// panic hook (it may allocate) from inside the allocator.
#[cold]
pub fn internal(what: &str) -> ! {
    let mut l = Line::new();
    l.str("mapalloc: internal error: ")
        .str(what)
        .str("\n")
        .write();
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

#[cold]
fn fatal_errno(msg: &str, e: i32) -> ! {
    let mut l = Line::new();
    l.str(msg).str(" (errno ").dec(e as u64).str(")\n").write();
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// Abort after printing `mapalloc: <what> <ptr>`, e.g. `mapalloc: double free of 0x7f...`.
#[cold]
pub fn fatal_ptr(what: &str, p: usize) -> ! {
    let mut l = Line::new();
    l.str("mapalloc: ")
        .str(what)
        .str(" ")
        .hex(p)
        .str("\n")
        .write();
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}
