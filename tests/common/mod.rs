//! Helpers shared by the integration tests: a fixed pseudo-random byte stream that blocks are
//! filled from and checked against, and a small deterministic random generator.
//!
//! A block with seed `s` and length `n` holds `PATTERN[offset(s)..offset(s) + n]`: filling is
//! one `memcpy` and checking one `memcmp`, so the tests stay fast even in debug builds, and two
//! blocks with different seeds hold different bytes (a block that received another block's
//! contents, or stale contents, is caught).

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use core::alloc::{GlobalAlloc, Layout};
use mapalloc::MapAlloc;
use std::sync::OnceLock;

pub mod preload;
pub mod profile;

/// Longest block the pattern can describe.
pub const MAX_PATTERN_LEN: usize = (64 << 20) + 4096;
/// Number of distinct starting offsets in the stream.
const OFFSETS: usize = 1 << 16;

static PATTERN: OnceLock<Box<[u8]>> = OnceLock::new();

fn stream() -> &'static [u8] {
    PATTERN.get_or_init(|| {
        let mut rng = XorShift::new(0x05EE_D0FA_110C);
        let mut v = vec![0u8; MAX_PATTERN_LEN + OFFSETS];
        for chunk in v.chunks_mut(8) {
            let bytes = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        v.into_boxed_slice()
    })
}

/// Mixes `seed` so that nearby seeds land far apart in the stream.
fn offset(seed: u64) -> usize {
    let mut x = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) as usize % OFFSETS
}

/// The bytes a block with `seed` holds in `[0, len)`.
pub fn expected(seed: u64, len: usize) -> &'static [u8] {
    assert!(len <= MAX_PATTERN_LEN, "pattern asked for {len} bytes");
    let o = offset(seed);
    &stream()[o..o + len]
}

/// Writes the pattern of `seed` into bytes `[from, to)` of the block at `p`.
///
/// # Safety
/// `p` is valid for writes of `to` bytes.
pub unsafe fn fill_range(p: *mut u8, from: usize, to: usize, seed: u64) {
    assert!(from <= to);
    let src = &expected(seed, to)[from..];
    // SAFETY: `src` is a separate allocation; the caller guarantees `p..p + to` is writable.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), p.add(from), to - from) };
}

/// Writes the pattern of `seed` into the first `len` bytes at `p`.
///
/// # Safety
/// `p` is valid for writes of `len` bytes.
pub unsafe fn fill(p: *mut u8, len: usize, seed: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { fill_range(p, 0, len, seed) }
}

/// Panics, naming the first wrong byte, unless the first `len` bytes at `p` hold the pattern
/// of `seed`.
///
/// # Safety
/// `p` is valid for reads of `len` initialised bytes.
pub unsafe fn check(p: *const u8, len: usize, seed: u64, what: &str) {
    // SAFETY: the caller guarantees `len` readable, initialised bytes at `p`.
    let got = unsafe { core::slice::from_raw_parts(p, len) };
    let want = expected(seed, len);
    if got != want {
        let i = got.iter().zip(want).position(|(g, w)| g != w).unwrap();
        panic!(
            "{what}: block {p:p} of {len} bytes (seed {seed:#x}) differs at byte {i}: \
             {:#04x} instead of {:#04x}",
            got[i], want[i]
        );
    }
}

/// Panics, naming the first non-zero byte, unless the first `len` bytes at `p` are zero.
///
/// # Safety
/// `p` is valid for reads of `len` initialised bytes.
pub unsafe fn check_zero(p: *const u8, len: usize, what: &str) {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    // SAFETY: the caller guarantees `len` readable, initialised bytes at `p`.
    let got = unsafe { core::slice::from_raw_parts(p, len) };
    for (k, chunk) in got.chunks(ZEROS.len()).enumerate() {
        if chunk != &ZEROS[..chunk.len()] {
            let i = k * ZEROS.len() + chunk.iter().position(|&b| b != 0).unwrap();
            panic!(
                "{what}: block {p:p} of {len} bytes has {:#04x} at byte {i}",
                got[i]
            );
        }
    }
}

/// xorshift64*: small, deterministic, good enough to pick sizes and indices.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// A size in `1..=max` whose logarithm is roughly uniform: most sizes are small, a few are
    /// near `max`.
    pub fn log_size(&mut self, max: usize) -> usize {
        let bits = usize::BITS - max.leading_zeros(); // max < 1 << bits
        let e = self.range(0, bits as usize - 1);
        self.range(1 << e, ((2 << e) - 1).min(max))
    }
}

/// A barrier that a panicking thread poisons: the other threads then panic too instead of
/// waiting for ever, and the test fails with the first thread's message. Hold a
/// [`GateGuard`] in every thread that waits.
pub struct Gate {
    state: std::sync::Mutex<(usize, u64)>,
    cv: std::sync::Condvar,
    n: usize,
    poisoned: std::sync::atomic::AtomicBool,
}

impl Gate {
    pub fn new(n: usize) -> Self {
        Self {
            state: std::sync::Mutex::new((0, 0)),
            cv: std::sync::Condvar::new(),
            n,
            poisoned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Waits for all `n` threads; true in exactly one of them (the last to arrive).
    pub fn wait(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 += 1;
        if s.0 == self.n {
            s.0 = 0;
            s.1 += 1;
            self.cv.notify_all();
            return true;
        }
        let generation = s.1;
        while s.1 == generation {
            assert!(!self.poisoned.load(SeqCst), "another thread failed");
            s = self
                .cv
                .wait_timeout(s, std::time::Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        false
    }

    /// Poisons the gate if the current thread is panicking, when dropped.
    pub fn guard(&self) -> GateGuard<'_> {
        GateGuard(self)
    }
}

pub struct GateGuard<'a>(&'a Gate);

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .poisoned
                .store(true, std::sync::atomic::Ordering::SeqCst);
            self.0.cv.notify_all();
        }
    }
}

/// A block allocated from `MapAlloc` and filled with the pattern of its seed.
pub struct Block {
    pub addr: usize,
    pub size: usize,
    pub seed: u64,
}

// SAFETY: a block is plain memory owned by whoever holds the `Block`.
unsafe impl Send for Block {}

/// The layout blocks are allocated with: 16-byte aligned (mapalloc's minimum alignment).
pub fn block_layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// Allocate `size` bytes from `MapAlloc` (panics on failure) and fill them from `seed`.
pub fn alloc_block(size: usize, seed: u64) -> Block {
    // SAFETY: non-zero size.
    let p = unsafe { MapAlloc.alloc(block_layout(size)) };
    assert!(!p.is_null(), "alloc {size}");
    // SAFETY: `p` is a live block of `size` bytes.
    unsafe { fill(p, size, seed) };
    Block {
        addr: p as usize,
        size,
        seed,
    }
}

/// Check a block's pattern (panicking with `what`) and free it.
pub fn check_and_free(b: Block, what: &str) {
    // SAFETY: the block is live, `size` bytes, filled with the pattern of `seed`.
    unsafe {
        check(b.addr as *const u8, b.size, b.seed, what);
        MapAlloc.dealloc(b.addr as *mut u8, block_layout(b.size));
    }
}

/// The environment variable `name` as a number (decimal, or hex with `0x`); `None` when it is
/// not set. Panics on a value that is not a number.
pub fn env_u64(name: &str) -> Option<u64> {
    let s = std::env::var(name).ok()?;
    let s = s.trim();
    Some(
        match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => s.parse(),
        }
        .unwrap_or_else(|_| panic!("{name}={s} is not a number")),
    )
}

/// This process's resident set, in bytes (`/proc/self/statm`).
pub fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("statm's second field");
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}
