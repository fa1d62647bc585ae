//! Messages and reports, written without allocating: misuse and fatal lines, and the
//! statistics summary. POSIX calls only (`write`, `fcntl`, `fstat`, `open`, `close`), the
//! same on every system of the contract.
//!
//! A program may close its stderr before mapalloc speaks: `ls` closes fd 2 at exit, before
//! the summary runs. So [`keep_stderr`] takes a private close-on-exec duplicate of fd 2 when
//! the settings are read, and a write to fd 2 that fails with `EBADF` goes to that duplicate
//! instead. A write that succeeds on fd 2 stays there, so a program that redirected its
//! stderr (`dup2(log, 2)`) finds mapalloc's lines in its log, as it would glibc's. Before the
//! duplicate is used, its device and inode are compared with the ones recorded when it was
//! taken: a program that closed every descriptor above 2 and opened a file that got the same
//! number must not find mapalloc's lines in that file.

use core::sync::atomic::{AtomicI32, AtomicU64, Ordering::Relaxed};

/// The private duplicate of fd 2 (-1: none), and the device and inode it had when taken.
static SAVED_FD: AtomicI32 = AtomicI32::new(-1);
static SAVED_DEV: AtomicU64 = AtomicU64::new(0);
static SAVED_INO: AtomicU64 = AtomicU64::new(0);

/// The lowest descriptor number tried for the duplicate: above the ones programs open early
/// and expect by number (a shell's scripts use 3-9, bash itself 255 and below).
const SAVED_FD_MIN: i32 = 300;

use super::posix::{errno, set_errno};

/// Device and inode of the open file `fd`, or `None` when `fd` is not open.
fn identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: all-zero bytes are a valid `stat`.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// Take the private duplicate of fd 2, once (nothing when fd 2 is closed). Preserves
/// `errno`. Called when the settings are read; a child after `fork` shares the parent's,
/// and `exec` closes it.
pub fn keep_stderr() {
    if SAVED_FD.load(Relaxed) >= 0 {
        return;
    }
    let saved = errno();
    // SAFETY: F_DUPFD_CLOEXEC only creates a descriptor; a failure leaves nothing behind.
    let mut fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, SAVED_FD_MIN) };
    if fd < 0 {
        // A low RLIMIT_NOFILE: any free number will do.
        // SAFETY: as above.
        fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
    }
    if fd >= 0 {
        match identity(fd) {
            Some((dev, ino)) => {
                SAVED_DEV.store(dev, Relaxed);
                SAVED_INO.store(ino, Relaxed);
                if SAVED_FD.compare_exchange(-1, fd, Relaxed, Relaxed).is_err() {
                    // Another thread was quicker.
                    // SAFETY: `fd` is ours and unused.
                    unsafe { libc::close(fd) };
                }
            }
            // SAFETY: `fd` is ours and unused.
            None => unsafe {
                libc::close(fd);
            },
        }
    }
    set_errno(saved);
}

/// The private duplicate, if it is still the file it was when taken.
fn saved_stderr() -> Option<i32> {
    let fd = SAVED_FD.load(Relaxed);
    if fd < 0 {
        return None;
    }
    let (dev, ino) = identity(fd)?;
    (dev == SAVED_DEV.load(Relaxed) && ino == SAVED_INO.load(Relaxed)).then_some(fd)
}

/// Write all of `msg` to `fd`; the `errno` of the failure otherwise.
fn write_all(fd: i32, msg: &[u8]) -> Result<(), i32> {
    let mut rest = msg;
    while !rest.is_empty() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            let e = if n < 0 { errno() } else { libc::EIO };
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        rest = rest.get(n as usize..).unwrap_or(&[]);
    }
    Ok(())
}

/// Write `msg` where mapalloc's messages go: fd 2, or the private duplicate when fd 2 has
/// been closed. No allocation, no formatting machinery; preserves `errno`.
pub fn write_stderr(msg: &[u8]) {
    let saved = errno();
    if write_all(2, msg) == Err(libc::EBADF) {
        if let Some(fd) = saved_stderr() {
            let _ = write_all(fd, msg);
        }
    }
    set_errno(saved);
}

/// Where a report goes: stderr (as [`write_stderr`]) or a file of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    Stderr,
    Fd(i32),
}

impl Sink {
    /// Write `msg` to the sink; failures are ignored (a report must not stop the program).
    pub fn write(self, msg: &[u8]) {
        match self {
            Sink::Stderr => write_stderr(msg),
            Sink::Fd(fd) => {
                let saved = errno();
                let _ = write_all(fd, msg);
                set_errno(saved);
            }
        }
    }
}

/// The longest report file name, after `%p` is expanded.
pub const PATH_MAX: usize = 4096;

/// Expand `pattern`: `%p` becomes `pid`, `%%` a `%`; NUL-terminated into `out`. `None`
/// when the result (with its NUL) does not fit, or `pattern` holds a NUL.
pub fn expand_path(pattern: &[u8], pid: u32, out: &mut [u8; PATH_MAX]) -> Option<usize> {
    let mut n = 0;
    let mut push = |b: u8, n: &mut usize| -> Option<()> {
        *out.get_mut(*n)? = b;
        *n += 1;
        Some(())
    };
    let mut i = 0;
    while let Some(&c) = pattern.get(i) {
        if c == 0 {
            return None;
        }
        match (c, pattern.get(i + 1)) {
            (b'%', Some(b'p')) => {
                let mut digits = [0u8; 10];
                let mut k = digits.len();
                let mut v = pid;
                loop {
                    k -= 1;
                    *digits.get_mut(k)? = b'0' + (v % 10) as u8;
                    v /= 10;
                    if v == 0 {
                        break;
                    }
                }
                for &d in digits.get(k..)? {
                    push(d, &mut n)?;
                }
                i += 2;
            }
            (b'%', Some(b'%')) => {
                push(b'%', &mut n)?;
                i += 2;
            }
            _ => {
                push(c, &mut n)?;
                i += 1;
            }
        }
    }
    push(0, &mut n)?;
    Some(n - 1)
}

/// Create (or truncate) the report file named by `pattern` (`%p`: this process's id),
/// without allocating: `open(2)` with mode 0644 and close-on-exec. `None` (with one warning
/// line on stderr) when it cannot be created. Preserves `errno`.
pub fn create_report_file(pattern: &[u8]) -> Option<i32> {
    match open_report(pattern) {
        Ok(fd) => Some(fd),
        Err(e) => {
            let mut l = Line::new();
            l.str("mapalloc: warning: cannot create MAPALLOC_STATS_FILE ")
                .bytes(pattern)
                .str(" (errno ")
                .dec(e as u64)
                .str("); the summary goes to stderr\n")
                .write();
            None
        }
    }
}

/// Create (or truncate) the file named by `pattern` (`%p`: this process's id) for writing, as
/// [`create_report_file`] does, but quietly: the descriptor, or the `errno` value of the
/// failure (`ENAMETOOLONG` for a name that does not expand). Preserves `errno`.
pub fn open_report(pattern: &[u8]) -> Result<i32, i32> {
    let saved = errno();
    let mut path = [0u8; PATH_MAX];
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    let expanded = expand_path(pattern, pid, &mut path).is_some();
    let fd = match expanded {
        // SAFETY: `path` is NUL-terminated.
        true => unsafe {
            libc::open(
                path.as_ptr().cast(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                0o644 as libc::c_uint,
            )
        },
        false => -1,
    };
    let e = if fd < 0 && expanded {
        errno()
    } else {
        libc::ENAMETOOLONG
    };
    set_errno(saved);
    if fd < 0 { Err(e) } else { Ok(fd) }
}

/// Write all of `msg` to the file `fd`: the `errno` value of a failure. Preserves `errno`.
pub fn write_fd(fd: i32, msg: &[u8]) -> Result<(), i32> {
    let saved = errno();
    let r = write_all(fd, msg);
    set_errno(saved);
    r
}

/// Read the file `path` and hand its bytes to `f` in chunks of up to 4 KiB, until the end or
/// until `f` returns false: the `errno` value of a failure. Preserves `errno`.
pub fn read_chunks(path: &core::ffi::CStr, mut f: impl FnMut(&[u8]) -> bool) -> Result<(), i32> {
    let saved = errno();
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = errno();
        set_errno(saved);
        return Err(e);
    }
    let mut buf = [0u8; 4096];
    let r = loop {
        // SAFETY: reading into a valid buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            break Err(e);
        }
        if n == 0 || !f(buf.get(..n as usize).unwrap_or(&[])) {
            break Ok(());
        }
    };
    // SAFETY: `fd` is ours.
    unsafe { libc::close(fd) };
    set_errno(saved);
    r
}

/// Close a report file made by [`create_report_file`].
pub fn close_report_file(fd: i32) {
    let saved = errno();
    // SAFETY: `fd` is a descriptor we opened and nothing else uses.
    unsafe { libc::close(fd) };
    set_errno(saved);
}

/// A fixed-capacity line buffer on the stack for messages built without allocating: 256
/// bytes, or `N` (the heap profile's lines hold up to 64 addresses).
pub struct Line<const N: usize = 256> {
    buf: [u8; N],
    len: usize,
}

impl Line {
    pub const fn new() -> Line {
        Line::empty()
    }
}

impl<const N: usize> Line<N> {
    pub const fn empty() -> Self {
        Line {
            buf: [0; N],
            len: 0,
        }
    }

    /// Start again from an empty line.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Append one byte; bytes beyond the buffer are dropped.
    #[inline(never)]
    pub fn byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    // Out of line: messages are cold, and inlined copies of these made up much of the
    // library's text (which the kernel maps, and counts resident, whole).
    #[inline(never)]
    pub fn str(&mut self, s: &str) -> &mut Self {
        for &b in s.as_bytes() {
            self.byte(b);
        }
        self
    }

    /// Append raw bytes (e.g. a value read from the environment).
    #[inline(never)]
    pub fn bytes(&mut self, s: &[u8]) -> &mut Self {
        for &b in s {
            self.byte(b);
        }
        self
    }

    #[inline(never)]
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

    #[inline(never)]
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

    /// Write the line where messages go (see [`write_stderr`]).
    pub fn write(&self) {
        write_stderr(self.as_bytes());
    }

    /// Write the line to `sink`.
    pub fn write_to(&self, sink: Sink) {
        sink.write(self.as_bytes());
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
pub(super) fn fatal_errno(msg: &str, e: i32) -> ! {
    let mut l = Line::new();
    l.str(msg).str(" (errno ").dec(e as u64).str(")\n").write();
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// Abort after printing `mapalloc: <what> <ptr>`, e.g. `mapalloc: double free of 0x7f...`.
#[cold]
pub fn fatal_ptr(what: &str, p: usize) -> ! {
    fatal_ptr_then(what, p, "")
}

/// Abort after printing `mapalloc: <what> <ptr><then>`, e.g. `mapalloc: sized delete of
/// 0x7f... with the wrong size` (`then` starts with its own space).
#[cold]
pub fn fatal_ptr_then(what: &str, p: usize, then: &str) -> ! {
    let mut l = Line::new();
    l.str("mapalloc: ")
        .str(what)
        .str(" ")
        .hex(p)
        .str(then)
        .str("\n")
        .write();
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(p: &str, pid: u32) -> Option<String> {
        let mut out = [0u8; PATH_MAX];
        let n = expand_path(p.as_bytes(), pid, &mut out)?;
        assert_eq!(out[n], 0, "NUL-terminated");
        Some(String::from_utf8(out[..n].to_vec()).expect("utf-8"))
    }

    #[test]
    fn report_file_names() {
        assert_eq!(
            expand("/tmp/s.%p.txt", 4242).as_deref(),
            Some("/tmp/s.4242.txt")
        );
        assert_eq!(expand("%p%p", 0).as_deref(), Some("00"));
        assert_eq!(expand("a%%p", 7).as_deref(), Some("a%p"));
        assert_eq!(expand("50%", 7).as_deref(), Some("50%"), "a lone % stays");
        assert_eq!(expand("x%q", 7).as_deref(), Some("x%q"));
        assert_eq!(expand("%p", u32::MAX).as_deref(), Some("4294967295"));
        assert_eq!(expand("a\0b", 1), None, "an embedded NUL");
        let long = "x".repeat(PATH_MAX - 1);
        assert_eq!(expand(&long, 1).map(|s| s.len()), Some(PATH_MAX - 1));
        assert_eq!(expand(&format!("{long}y"), 1), None, "no room for the NUL");
        let near = "x".repeat(PATH_MAX - 3);
        assert!(
            expand(&format!("{near}%p"), 12).is_some(),
            "4095 bytes and the NUL fit"
        );
        assert_eq!(
            expand(&format!("{near}%p"), 123),
            None,
            "the pid pushes it over"
        );
    }
}
