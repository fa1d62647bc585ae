//! Runtime configuration: the `MAPALLOC_*` environment variables and their defaults, in one
//! place.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MAPALLOC_STATS` | `0` | `1`: print the statistics summary to stderr at exit |
//! | `MAPALLOC_STATS_FILE` | unset | write the summary at exit to this file instead (`%p`: the process id; implies `MAPALLOC_STATS=1`) |
//! | `MAPALLOC_PURGE_DELAY_MS` | `250` | free memory stays resident this long before it is purged (`0`: at once) |
//! | `MAPALLOC_RETAIN_MB` | `64` | empty segments kept mapped (purged) for reuse; beyond it they are unmapped |
//! | `MAPALLOC_LARGE_CACHE_MB` | `128` | bytes of freed large blocks kept for reuse (they decay like pages) |
//! | `MAPALLOC_STRICT` | `0` | `1`: strict hardening mode (see the README) |
//! | `MAPALLOC_STRICT_ZERO` | `1` | `0`: strict mode does not clear freed blocks (its largest cost) |
//! | `MAPALLOC_VERBOSE` | `0` | `1`: print the effective settings at start-up |
//! | `MAPALLOC_PROF` | `0` | `1`: sample allocations for a heap profile, written at exit; `leaks`: record every allocation and report what is still live at exit (see `prof`) |
//! | `MAPALLOC_PROF_SAMPLE` | `524288` (`1` with `leaks`) | mean bytes between two sampled allocations (`1`: every allocation) |
//! | `MAPALLOC_PROF_FILE` | `mapalloc.%p.heap` (`mapalloc.%p.leaks` with `leaks`) | where the profile goes at exit (`%p`: the process id) |
//! | `MAPALLOC_PROF_SIGNAL` | unset | `1`: `SIGUSR2` writes the live heap to `<file>.<n>`; a number: that signal instead |
//!
//! The environment is read once, with `getenv` (which does not allocate), on the first
//! allocation. A value that does not parse or is out of range prints one warning line naming
//! the variable and keeps the default. Rust programs may call [`crate::configure`] instead (or
//! as well): what it sets wins over the environment.
//!
//! The settings are plain atomics read with relaxed loads; only `strict` and `prof` must be
//! fixed before the first allocation (blocks handed out under one mode are freed under the same
//! mode).

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use crate::os;

/// Defaults, documented in the table above and in the README.
pub const DEFAULT_PURGE_DELAY_MS: usize = 250;
pub const DEFAULT_RETAIN_MB: usize = 64;
pub const DEFAULT_LARGE_CACHE_MB: usize = 128;
pub const DEFAULT_PROF_SAMPLE: usize = 512 << 10;
/// Upper bounds of the numeric settings (one hour; 1 TiB).
const MAX_DELAY_MS: usize = 3_600_000;
const MAX_MB: usize = 1 << 20;
/// The longest mean sampling interval (1 TiB).
const MAX_PROF_SAMPLE: usize = 1 << 40;

static STATS: AtomicBool = AtomicBool::new(false);
/// `MAPALLOC_STATS_FILE`, copied when the environment is read (the program may change its
/// environment later); `STATS_FILE_LEN` 0: unset.
static STATS_FILE: [AtomicU8; os::PATH_MAX] = [const { AtomicU8::new(0) }; os::PATH_MAX];
static STATS_FILE_LEN: AtomicUsize = AtomicUsize::new(0);
static PURGE_DELAY_MS: AtomicUsize = AtomicUsize::new(DEFAULT_PURGE_DELAY_MS);
static RETAIN_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_RETAIN_MB << 20);
static LARGE_CACHE_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_LARGE_CACHE_MB << 20);
static STRICT: AtomicBool = AtomicBool::new(cfg!(feature = "strict"));
static STRICT_ZERO: AtomicBool = AtomicBool::new(true);
static VERBOSE: AtomicBool = AtomicBool::new(false);
/// Set at the first allocation: from then on `STRICT` never changes (see [`fix_strict`]).
static STRICT_FIXED: AtomicBool = AtomicBool::new(false);
/// The mode the allocation paths follow: undecided until the first allocation has read the
/// environment, then fixed.
static MODE: AtomicU8 = AtomicU8::new(MODE_UNDECIDED);
/// The mode is a set of bits: none for the default paths.
const MODE_DEFAULT: u8 = 0;
pub const MODE_STRICT: u8 = 1;
pub const MODE_PROF: u8 = 2;
const MODE_UNDECIDED: u8 = 0x80;

/// `MAPALLOC_PROF`: off, sampling, or every allocation for the leak report.
pub const PROF_OFF: u8 = 0;
pub const PROF_SAMPLE: u8 = 1;
pub const PROF_LEAKS: u8 = 2;
static PROF: AtomicU8 = AtomicU8::new(PROF_OFF);
/// `MAPALLOC_PROF_SAMPLE`; 0: the mode's default.
static PROF_SAMPLE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PROF_FILE: [AtomicU8; os::PATH_MAX] = [const { AtomicU8::new(0) }; os::PATH_MAX];
static PROF_FILE_LEN: AtomicUsize = AtomicUsize::new(0);
/// `MAPALLOC_PROF_SIGNAL`: the signal that dumps the live heap, 0 for none.
static PROF_SIGNAL: AtomicUsize = AtomicUsize::new(0);

const UNLOADED: u8 = 0;
const LOADING: u8 = 1;
const LOADED: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNLOADED);

/// Whether `MAPALLOC_STATS` asks for the summary at exit.
#[inline]
pub fn stats_at_exit() -> bool {
    STATS.load(Ordering::Relaxed)
}

/// `MAPALLOC_STATS_FILE` copied into `out`: its length, or `None` when it is unset.
pub fn stats_file(out: &mut [u8; os::PATH_MAX]) -> Option<usize> {
    let n = STATS_FILE_LEN.load(Ordering::Acquire);
    if n == 0 {
        return None;
    }
    for (o, b) in out.iter_mut().zip(STATS_FILE.iter()).take(n) {
        *o = b.load(Ordering::Relaxed);
    }
    Some(n)
}

/// How long free memory stays resident before it is purged, in milliseconds.
#[inline]
pub fn purge_delay_ms() -> usize {
    PURGE_DELAY_MS.load(Ordering::Relaxed)
}

/// Bytes of empty segments kept mapped for reuse.
#[inline]
pub fn retain_bytes() -> usize {
    RETAIN_BYTES.load(Ordering::Relaxed)
}

/// Bytes of freed large blocks kept for reuse.
#[inline]
pub fn large_cache_bytes() -> usize {
    LARGE_CACHE_BYTES.load(Ordering::Relaxed)
}

/// Whether strict mode clears freed blocks (`MAPALLOC_STRICT_ZERO`). It may change at any
/// time: no path relies on a free block reading zero.
#[inline(always)]
pub fn strict_zero() -> bool {
    STRICT_ZERO.load(Ordering::Relaxed)
}

/// Whether strict hardening is on. The first call initialises the allocator (reading the
/// environment), which fixes the mode; after that it is one load and one predictable branch.
#[inline(always)]
pub fn strict() -> bool {
    // Acquire: a thread that sees the strict mode also sees the secret drawn before it.
    match MODE.load(Ordering::Acquire) {
        MODE_DEFAULT => false,
        MODE_UNDECIDED => decide_mode() & MODE_STRICT != 0,
        m => m & MODE_STRICT != 0,
    }
}

/// Whether every path is the default one (no strict mode, no profiling): the one check the
/// fast paths of `alloc` make. As cheap as [`strict`].
#[inline(always)]
pub fn plain() -> bool {
    match MODE.load(Ordering::Acquire) {
        MODE_DEFAULT => true,
        MODE_UNDECIDED => decide_mode() == MODE_DEFAULT,
        _ => false,
    }
}

/// The mode's bits ([`MODE_STRICT`], [`MODE_PROF`]), decided on the first call.
#[inline(always)]
pub fn mode() -> u8 {
    match MODE.load(Ordering::Acquire) {
        MODE_UNDECIDED => decide_mode(),
        m => m,
    }
}

/// Whether allocations are sampled for a heap profile (`MAPALLOC_PROF`).
#[inline]
pub fn profiling() -> bool {
    match MODE.load(Ordering::Acquire) {
        MODE_UNDECIDED => decide_mode() & MODE_PROF != 0,
        m => m & MODE_PROF != 0,
    }
}

#[cold]
#[inline(never)]
fn decide_mode() -> u8 {
    crate::init::ensure();
    let m = MODE.load(Ordering::Acquire);
    if m != MODE_UNDECIDED {
        return m;
    }
    // `init` fixed the mode, unless this is a call re-entered from inside it before that
    // point (nothing there allocates before it), in which case the setting read so far holds
    // (profiling stays off until the mode is fixed).
    let strict = STRICT.load(Ordering::Relaxed);
    if strict {
        // Strict paths read the secret without checking it (see `strict::init`).
        crate::strict::init();
        MODE_STRICT
    } else {
        MODE_DEFAULT
    }
}

/// `MAPALLOC_PROF`: [`PROF_OFF`], [`PROF_SAMPLE`] or [`PROF_LEAKS`].
pub fn prof_mode() -> u8 {
    PROF.load(Ordering::Relaxed)
}

/// The mean sampling interval in bytes (`MAPALLOC_PROF_SAMPLE`; by default 512 KiB, and 1,
/// every allocation, for the leak report).
pub fn prof_sample_bytes() -> usize {
    match PROF_SAMPLE_BYTES.load(Ordering::Relaxed) {
        0 if prof_mode() == PROF_LEAKS => 1,
        0 => DEFAULT_PROF_SAMPLE,
        n => n,
    }
}

/// The profile's file name pattern (`MAPALLOC_PROF_FILE`, else the mode's default), copied
/// into `out`: its length.
pub fn prof_file(out: &mut [u8; os::PATH_MAX]) -> usize {
    let n = PROF_FILE_LEN.load(Ordering::Acquire);
    if n == 0 {
        let d: &[u8] = if prof_mode() == PROF_LEAKS {
            b"mapalloc.%p.leaks"
        } else {
            b"mapalloc.%p.heap"
        };
        for (o, &b) in out.iter_mut().zip(d) {
            *o = b;
        }
        return d.len();
    }
    for (o, b) in out.iter_mut().zip(PROF_FILE.iter()).take(n) {
        *o = b.load(Ordering::Relaxed);
    }
    n
}

/// The signal that dumps the live heap (`MAPALLOC_PROF_SIGNAL`), 0 for none.
pub fn prof_signal() -> i32 {
    PROF_SIGNAL.load(Ordering::Relaxed) as i32
}

/// Read the environment once. Called from initialisation before the first block is handed
/// out; cheap after the first call. Before libc has set up `environ` (a `malloc` from very
/// early start-up), nothing is read and a later call tries again.
pub fn load() {
    if STATE.load(Ordering::Acquire) == LOADED {
        return;
    }
    if !environ_ready() {
        return;
    }
    if STATE
        .compare_exchange(UNLOADED, LOADING, Ordering::Acquire, Ordering::Acquire)
        .is_err()
    {
        // Another thread is loading (or has loaded): the defaults are valid meanwhile.
        return;
    }
    // Before anything can be reported: fd 2 may be closed by the time it is.
    os::keep_stderr();
    if let Some(v) = env_bool(c"MAPALLOC_STATS", "MAPALLOC_STATS") {
        STATS.store(v, Ordering::Relaxed);
    }
    if let Some(v) = env(c"MAPALLOC_STATS_FILE").filter(|v| !v.is_empty()) {
        if v.len() < os::PATH_MAX {
            for (slot, &b) in STATS_FILE.iter().zip(v) {
                slot.store(b, Ordering::Relaxed);
            }
            STATS_FILE_LEN.store(v.len(), Ordering::Release);
            STATS.store(true, Ordering::Relaxed);
        } else {
            os::write_stderr(b"mapalloc: warning: MAPALLOC_STATS_FILE is too long; ignored\n");
        }
    }
    if let Some(v) = env_num(
        c"MAPALLOC_PURGE_DELAY_MS",
        "MAPALLOC_PURGE_DELAY_MS",
        MAX_DELAY_MS,
    ) {
        PURGE_DELAY_MS.store(v, Ordering::Relaxed);
    }
    if let Some(v) = env_num(c"MAPALLOC_RETAIN_MB", "MAPALLOC_RETAIN_MB", MAX_MB) {
        RETAIN_BYTES.store(v << 20, Ordering::Relaxed);
    }
    if let Some(v) = env_num(
        c"MAPALLOC_LARGE_CACHE_MB",
        "MAPALLOC_LARGE_CACHE_MB",
        MAX_MB,
    ) {
        LARGE_CACHE_BYTES.store(v << 20, Ordering::Relaxed);
    }
    if let Some(v) = env_bool(c"MAPALLOC_STRICT", "MAPALLOC_STRICT") {
        if !STRICT_FIXED.load(Ordering::Acquire) {
            STRICT.store(v, Ordering::Relaxed);
        } else if v != STRICT.load(Ordering::Relaxed) {
            // The environment became readable only after the first allocation (a `malloc` from
            // very early start-up): blocks of the other mode are live, so the mode stays.
            os::write_stderr(b"mapalloc: warning: MAPALLOC_STRICT read after the first allocation; keeping the mode\n");
        }
    }
    if let Some(v) = env_bool(c"MAPALLOC_STRICT_ZERO", "MAPALLOC_STRICT_ZERO") {
        STRICT_ZERO.store(v, Ordering::Relaxed);
    }
    if let Some(v) = env_bool(c"MAPALLOC_VERBOSE", "MAPALLOC_VERBOSE") {
        VERBOSE.store(v, Ordering::Relaxed);
    }
    load_prof();
    STATE.store(LOADED, Ordering::Release);
    if VERBOSE.load(Ordering::Relaxed) {
        print_settings();
    }
}

/// The profiling variables (see the table above).
fn load_prof() {
    if let Some(raw) = env(c"MAPALLOC_PROF") {
        let m = match raw {
            b"leaks" => Some(PROF_LEAKS),
            _ => parse_bool(raw).map(|on| if on { PROF_SAMPLE } else { PROF_OFF }),
        };
        match m {
            Some(m) if !STRICT_FIXED.load(Ordering::Acquire) => PROF.store(m, Ordering::Relaxed),
            Some(m) if m != PROF.load(Ordering::Relaxed) => os::write_stderr(
                b"mapalloc: warning: MAPALLOC_PROF read after the first allocation; not profiling\n",
            ),
            Some(_) => {}
            None => warn("MAPALLOC_PROF", raw, "0, 1 or leaks", u64::MAX),
        }
    }
    if let Some(v) = env_num(
        c"MAPALLOC_PROF_SAMPLE",
        "MAPALLOC_PROF_SAMPLE",
        MAX_PROF_SAMPLE,
    ) {
        PROF_SAMPLE_BYTES.store(v.max(1), Ordering::Relaxed);
    }
    if let Some(v) = env(c"MAPALLOC_PROF_FILE").filter(|v| !v.is_empty()) {
        if v.len() < os::PATH_MAX {
            for (slot, &b) in PROF_FILE.iter().zip(v) {
                slot.store(b, Ordering::Relaxed);
            }
            PROF_FILE_LEN.store(v.len(), Ordering::Release);
        } else {
            os::write_stderr(b"mapalloc: warning: MAPALLOC_PROF_FILE is too long; ignored\n");
        }
    }
    if let Some(raw) = env(c"MAPALLOC_PROF_SIGNAL") {
        // `1` is SIGUSR2 (signal 1, SIGHUP, is no useful choice); another number names the
        // signal.
        match parse_num(raw, 64) {
            Some(0) => PROF_SIGNAL.store(0, Ordering::Relaxed),
            Some(1) => PROF_SIGNAL.store(libc::SIGUSR2 as usize, Ordering::Relaxed),
            Some(n) => PROF_SIGNAL.store(n, Ordering::Relaxed),
            None => warn(
                "MAPALLOC_PROF_SIGNAL",
                raw,
                "a signal number from 0 to ",
                64,
            ),
        }
    }
}

/// Fix the mode at the first allocation (called by `init` right after [`load`]): blocks
/// handed out under one mode must be freed under the same mode.
pub fn fix_strict() {
    STRICT_FIXED.store(true, Ordering::Release);
    let mut mode = if STRICT.load(Ordering::Relaxed) {
        // Before the mode is published: strict paths read the secret without checking it.
        crate::strict::init();
        MODE_STRICT
    } else {
        MODE_DEFAULT
    };
    if PROF.load(Ordering::Relaxed) != PROF_OFF {
        crate::prof::init();
        mode |= MODE_PROF;
    }
    MODE.store(mode, Ordering::Release);
}

/// Settings a Rust program may choose in code; `None` keeps the environment's (or default)
/// value. See [`crate::configure`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Print the statistics summary at exit (`MAPALLOC_STATS`).
    pub stats_at_exit: Option<bool>,
    /// Milliseconds before free memory is purged (`MAPALLOC_PURGE_DELAY_MS`), at most one
    /// hour.
    pub purge_delay_ms: Option<usize>,
    /// Bytes of empty segments kept mapped (`MAPALLOC_RETAIN_MB`).
    pub retain_bytes: Option<usize>,
    /// Bytes of freed large blocks kept for reuse (`MAPALLOC_LARGE_CACHE_MB`).
    pub large_cache_bytes: Option<usize>,
    /// Strict hardening (`MAPALLOC_STRICT`); only before the first allocation.
    pub strict: Option<bool>,
    /// Whether strict mode clears freed blocks (`MAPALLOC_STRICT_ZERO`); at any time.
    pub strict_zero: Option<bool>,
    /// Print the effective settings when they are applied (`MAPALLOC_VERBOSE`).
    pub verbose: Option<bool>,
}

/// Why [`crate::configure`] refused a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `strict` can only change before the first allocation.
    StrictAfterFirstAllocation,
    /// `purge_delay_ms` above one hour.
    PurgeDelayTooLong,
}

/// Apply `c` over the environment's settings. Nothing is applied when an error is returned.
pub fn apply(c: &Config) -> Result<(), ConfigError> {
    load();
    if let Some(s) = c.strict {
        if s != STRICT.load(Ordering::Relaxed) && crate::init::started() {
            return Err(ConfigError::StrictAfterFirstAllocation);
        }
    }
    if c.purge_delay_ms.is_some_and(|d| d > MAX_DELAY_MS) {
        return Err(ConfigError::PurgeDelayTooLong);
    }
    if let Some(v) = c.stats_at_exit {
        STATS.store(v, Ordering::Relaxed);
    }
    if let Some(v) = c.purge_delay_ms {
        PURGE_DELAY_MS.store(v, Ordering::Relaxed);
    }
    if let Some(v) = c.retain_bytes {
        RETAIN_BYTES.store(v, Ordering::Relaxed);
    }
    if let Some(v) = c.large_cache_bytes {
        LARGE_CACHE_BYTES.store(v, Ordering::Relaxed);
    }
    if let Some(v) = c.strict {
        STRICT.store(v, Ordering::Relaxed);
    }
    if let Some(v) = c.strict_zero {
        STRICT_ZERO.store(v, Ordering::Relaxed);
    }
    if let Some(v) = c.verbose {
        VERBOSE.store(v, Ordering::Relaxed);
    }
    if VERBOSE.load(Ordering::Relaxed) {
        print_settings();
    }
    Ok(())
}

/// The settings in effect.
pub fn current() -> Config {
    load();
    Config {
        stats_at_exit: Some(stats_at_exit()),
        purge_delay_ms: Some(purge_delay_ms()),
        retain_bytes: Some(retain_bytes()),
        large_cache_bytes: Some(large_cache_bytes()),
        strict: Some(STRICT.load(Ordering::Relaxed)),
        strict_zero: Some(strict_zero()),
        verbose: Some(VERBOSE.load(Ordering::Relaxed)),
    }
}

fn print_settings() {
    let mut l = os::Line::new();
    l.str("mapalloc: settings stats=")
        .dec(stats_at_exit() as u64)
        .str(" purge_delay_ms=")
        .dec(purge_delay_ms() as u64)
        .str(" retain_mb=")
        .dec((retain_bytes() >> 20) as u64)
        .str(" large_cache_mb=")
        .dec((large_cache_bytes() >> 20) as u64)
        .str(" strict=")
        .dec(STRICT.load(Ordering::Relaxed) as u64)
        .str(" strict_zero=")
        .dec(strict_zero() as u64)
        .str(" prof=")
        .dec(prof_mode() as u64)
        .str(" prof_sample=")
        .dec(prof_sample_bytes() as u64)
        .str("\n")
        .write();
}

// ---------------------------------------------------------------------------------------------
// Parsing, without allocating.

#[cfg(target_env = "gnu")]
fn environ_ready() -> bool {
    unsafe extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: a pointer-sized variable libc owns; reading it is how getenv starts too.
    !unsafe { core::ptr::read_volatile(&raw const environ) }.is_null()
}

#[cfg(not(target_env = "gnu"))]
fn environ_ready() -> bool {
    true
}

/// The bytes of variable `name`, if set.
fn env(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: `name` is NUL-terminated; getenv does not allocate.
    let v = unsafe { libc::getenv(name.as_ptr()) };
    if v.is_null() {
        return None;
    }
    // SAFETY: getenv returns a NUL-terminated string that lives as long as the environment
    // entry (we read it now and keep nothing).
    Some(unsafe { core::ffi::CStr::from_ptr(v) }.to_bytes())
}

/// Parse a decimal number in `0..=max`, surrounding spaces allowed.
pub fn parse_num(s: &[u8], max: usize) -> Option<usize> {
    let s = s.trim_ascii();
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: usize = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as usize)?;
    }
    (v <= max).then_some(v)
}

/// Parse `0`/`1` (also `false`/`true`, `no`/`yes`, `off`/`on`, any case).
pub fn parse_bool(s: &[u8]) -> Option<bool> {
    let s = s.trim_ascii();
    const TRUE: [&[u8]; 4] = [b"1", b"true", b"yes", b"on"];
    const FALSE: [&[u8]; 4] = [b"0", b"false", b"no", b"off"];
    if TRUE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| s.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}

fn env_num(name: &core::ffi::CStr, shown: &str, max: usize) -> Option<usize> {
    let raw = env(name)?;
    let v = parse_num(raw, max);
    if v.is_none() {
        warn(shown, raw, "a whole number from 0 to ", max as u64);
    }
    v
}

fn env_bool(name: &core::ffi::CStr, shown: &str) -> Option<bool> {
    let raw = env(name)?;
    let v = parse_bool(raw);
    if v.is_none() {
        warn(shown, raw, "0 or 1", u64::MAX);
    }
    v
}

/// `mapalloc: warning: MAPALLOC_X="value" is not <expected>; keeping the default`
#[cold]
fn warn(name: &str, raw: &[u8], expected: &str, max: u64) {
    let mut l = os::Line::new();
    l.str("mapalloc: warning: ")
        .str(name)
        .str("=\"")
        .bytes(raw.get(..raw.len().min(64)).unwrap_or(raw))
        .str("\" is not ")
        .str(expected);
    if max != u64::MAX {
        l.dec(max);
    }
    l.str("; keeping the default\n").write();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_num(b"0", 10), Some(0));
        assert_eq!(parse_num(b" 250 ", 1000), Some(250));
        assert_eq!(parse_num(b"1001", 1000), None);
        assert_eq!(parse_num(b"", 10), None);
        assert_eq!(parse_num(b"-1", 10), None);
        assert_eq!(parse_num(b"1e3", 10_000), None);
        assert_eq!(parse_num(b"99999999999999999999999", usize::MAX), None);
        assert_eq!(
            parse_num(b"18446744073709551615", usize::MAX),
            Some(usize::MAX)
        );
    }

    #[test]
    fn booleans() {
        for t in [&b"1"[..], b"true", b"YES", b" on"] {
            assert_eq!(parse_bool(t), Some(true), "{t:?}");
        }
        for f in [&b"0"[..], b"False", b"no", b"off "] {
            assert_eq!(parse_bool(f), Some(false), "{f:?}");
        }
        for bad in [&b""[..], b"2", b"y", b"enable"] {
            assert_eq!(parse_bool(bad), None, "{bad:?}");
        }
    }
}
