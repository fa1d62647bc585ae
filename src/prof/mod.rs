//! Heap profiling: sampled allocations with their stacks, written as a heap profile, and the
//! leak report. Off unless `MAPALLOC_PROF` is set (see `config`); then `alloc` leaves its fast
//! paths (the mode check they make anyway) and calls [`allocated`] after each allocation and
//! [`freeing`] before each free.
//!
//! # Sampling
//! Sampling is by bytes, as in tcmalloc and jemalloc: each thread counts down the bytes it
//! allocates, and the allocation that crosses zero is sampled; the next distance is drawn from
//! an exponential distribution with the mean `MAPALLOC_PROF_SAMPLE` (512 KiB by default). So
//! every byte is sampled with the same small probability, a block of `n` bytes with
//! probability `1 - exp(-n / mean)`, and dividing by that probability gives an unbiased
//! estimate of each stack's bytes and blocks (see [`scale`]). With a mean of 1 (the default of
//! `MAPALLOC_PROF=leaks`) every allocation is recorded and nothing is estimated.
//!
//! # What a sample costs, and what it may not do
//! A sampled allocation walks its stack (`unwind`, at most 64 frames) and records the block in
//! the tables (`table`), which live in memory mapped for them: nothing goes through the
//! program's allocator. The thread is marked busy meanwhile, so an allocation made inside the
//! walk, or by a signal handler that interrupts it, is not sampled again. The tables have one
//! lock; a thread never waits for it while holding it (a signal handler that finds its own
//! thread inside the tables skips its work or, for a dump, leaves it to the thread when it
//! leaves them), and the child of a `fork` takes it over if a thread that did not follow held
//! it. Threads that have no heap any more (after their exit hook) are not sampled; their frees
//! are still seen.
//!
//! # Recognising a sampled block when it is freed
//! Without a lookup on every free: a page descriptor counts the sampled blocks on its page
//! (`segment::Page::prof_samples`), and only a free on a page whose count is not zero looks
//! the block up. For large blocks, which have no page, a count of sampled large blocks plays
//! that part: their frees make syscalls anyway.
//!
//! # Output
//! At exit, on `MAPALLOC_PROF_SIGNAL`, or on [`dump`] (`mapalloc_profile_dump`), the tables are
//! written in the gperftools heap-profile text format (`write`), which `pprof` and
//! `google-pprof` read; `mapalloc-prof` (the `prof/` crate) symbolises it outside the program
//! and draws the flame graphs.

mod math;
mod table;
mod unwind;
mod write;

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use crate::sync::{SpinGuard, SpinLock};
use crate::{config, heap, os, segment};
use table::{MAX_FRAMES, Tables};

pub use math::scale;

static TABLES: SpinLock<Tables> = SpinLock::new(Tables::new());
/// Sampled blocks that are not in a segment (large blocks).
static LARGE_SAMPLED: AtomicUsize = AtomicUsize::new(0);
/// The mean sampling interval in bytes (1: every allocation), fixed by [`init`].
static PERIOD: AtomicUsize = AtomicUsize::new(config::DEFAULT_PROF_SAMPLE);
/// A dump asked for by a signal that interrupted its own thread inside the tables.
static DUMP_PENDING: AtomicBool = AtomicBool::new(false);
/// Numbered dumps written so far (the signal's file names).
static DUMPS: AtomicUsize = AtomicUsize::new(0);

/// A thread's sampling state, kept in its heap. All zero is valid: not yet armed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadState {
    /// Bytes still to allocate before the next sample.
    left: i64,
    rng: u64,
    armed: bool,
    busy: bool,
}

/// Turn profiling on: called once by `config` before the mode is published.
pub fn init() {
    PERIOD.store(config::prof_sample_bytes().max(1), Relaxed);
    let sig = config::prof_signal();
    if sig != 0 && !os::on_signal(sig, on_signal) {
        os::write_stderr(b"mapalloc: warning: cannot install the MAPALLOC_PROF_SIGNAL handler\n");
    }
}

/// The tables, unless the calling thread is inside them already (a signal handler that
/// interrupted it).
fn tables() -> Option<SpinGuard<'static, Tables>> {
    if TABLES.held_by_me() {
        return None;
    }
    Some(TABLES.lock())
}

/// After leaving the tables: a dump that a signal asked for meanwhile.
fn left_tables() {
    if DUMP_PENDING.load(Relaxed) && DUMP_PENDING.swap(false, Relaxed) {
        let _ = dump_numbered();
    }
}

/// The block `p` of `size` bytes was just allocated; `marker` is the address of a local of
/// the allocator's entry frame (see `unwind`).
#[inline]
pub fn allocated(p: *mut u8, size: usize, marker: usize) {
    let h = heap::tls_heap();
    if h as usize <= heap::DONE as usize {
        return;
    }
    // SAFETY: a pointer above DONE in our TLS is this thread's own heap; only this thread
    // touches its profiling state.
    let t = unsafe { &mut (*h).prof };
    t.left = t.left.wrapping_sub(size as i64);
    if t.left > 0 {
        return;
    }
    sample(t, p, size, marker);
}

#[cold]
#[inline(never)]
fn sample(t: &mut ThreadState, p: *mut u8, size: usize, marker: usize) {
    if t.busy {
        return;
    }
    let period = PERIOD.load(Relaxed);
    if period > 1 {
        if !t.armed {
            t.armed = true;
            t.rng = os::random_u64() | 1;
            t.left = t
                .left
                .saturating_add(math::next_interval(&mut t.rng, period));
            if t.left > 0 {
                return;
            }
        }
        // Memoryless: the distance to the next sample starts afresh at the end of this block.
        t.left = math::next_interval(&mut t.rng, period);
    } else {
        t.left = 0;
    }
    t.busy = true;
    let mut frames = [0usize; MAX_FRAMES];
    let n = unwind::capture(marker, &mut frames);
    if let Some(mut tb) = tables() {
        // A record left under this address (a free that a signal handler made while this
        // thread was inside the tables) is replaced.
        let replaced = tb.remove(p as usize).is_some();
        let recorded = tb.insert(p as usize, size, frames.get(..n).unwrap_or(&[]));
        drop(tb);
        match (replaced, recorded) {
            (false, true) => count(p, true),
            (true, false) => count(p, false),
            _ => {}
        }
        left_tables();
    }
    t.busy = false;
}

/// Count a sampled block in, or out of, its page (or the large blocks).
fn count(p: *mut u8, up: bool) {
    let c = match segment::segment_of(p as usize) {
        // SAFETY: `seg` is a mapped segment of ours that contains `p`.
        Some(seg) => unsafe { &(*seg).pages[(*seg).page_index(p as usize)].prof_samples },
        None => {
            if up {
                LARGE_SAMPLED.fetch_add(1, Relaxed);
            } else {
                LARGE_SAMPLED.fetch_sub(1, Relaxed);
            }
            return;
        }
    };
    if up {
        // Saturates: a page with more samples than the count holds keeps looking them up.
        let _ = c.fetch_update(Relaxed, Relaxed, |v| v.checked_add(1));
    } else {
        let _ = c.fetch_update(Relaxed, Relaxed, |v| {
            if v == u16::MAX {
                None
            } else {
                v.checked_sub(1)
            }
        });
    }
}

/// Whether `p`, in segment `seg`, may be a sampled block: from its page's count.
///
/// # Safety
/// `seg` is a mapped segment of ours that contains `p`.
#[inline(always)]
unsafe fn sampled_in(seg: *mut segment::Segment, p: *mut u8) -> bool {
    // SAFETY: per the contract; the count is atomic.
    unsafe {
        (*seg).pages[(*seg).page_index(p as usize)]
            .prof_samples
            .load(Relaxed)
            != 0
    }
}

/// The block `p` (not null) is about to be freed (or moved by `realloc`): forget its sample.
#[inline]
pub fn freeing(p: *mut u8) {
    let maybe = match segment::segment_of(p as usize) {
        // SAFETY: `seg` contains `p`.
        Some(seg) => unsafe { sampled_in(seg, p) },
        None => LARGE_SAMPLED.load(Relaxed) != 0,
    };
    if maybe {
        forget(p);
    }
}

/// [`freeing`] for a block whose segment the caller has looked up already.
///
/// # Safety
/// `seg` is the segment of ours that contains `p` (from `segment::segment_of`).
#[inline(always)]
pub unsafe fn freeing_in(seg: *mut segment::Segment, p: *mut u8) {
    // SAFETY: per the contract.
    if unsafe { sampled_in(seg, p) } {
        forget(p);
    }
}

#[cold]
#[inline(never)]
fn forget(p: *mut u8) {
    // Inside the tables already (a signal handler's free): the record stays, and is replaced
    // if the address is sampled again.
    let Some(mut tb) = tables() else { return };
    let removed = tb.remove(p as usize).is_some();
    drop(tb);
    if removed {
        count(p, false);
    }
    left_tables();
}

/// Why a profile could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpError {
    /// Profiling is off (`MAPALLOC_PROF` unset or 0).
    Off,
    /// The file could not be created or written: the `errno` value.
    Io(i32),
}

/// Write the live heap to the file named by `pattern` (`%p`: the process id).
pub fn dump(pattern: &[u8]) -> Result<(), DumpError> {
    if !config::profiling() {
        return Err(DumpError::Off);
    }
    let fd = os::open_report(pattern).map_err(DumpError::Io)?;
    let r = match tables() {
        Some(tb) => {
            let r = write::heap_profile(fd, &tb, PERIOD.load(Relaxed));
            drop(tb);
            left_tables();
            r
        }
        None => Err(libc::EDEADLK),
    };
    os::close_report_file(fd);
    r.map_err(DumpError::Io)
}

/// A dump to the profile's file name followed by `.<n>` (signals and `dump` without a
/// name).
pub fn dump_numbered() -> Result<(), DumpError> {
    let mut name = [0u8; os::PATH_MAX];
    let len = config::prof_file(&mut name);
    let n = DUMPS.fetch_add(1, Relaxed) + 1;
    let mut l = os::Line::new();
    l.bytes(name.get(..len).unwrap_or(&[]))
        .str(".")
        .dec(n as u64);
    dump(l.as_bytes())
}

extern "C" fn on_signal(_sig: libc::c_int) {
    let saved = os::errno();
    if TABLES.held_by_me() {
        DUMP_PENDING.store(true, Relaxed);
    } else {
        let _ = dump_numbered();
    }
    os::set_errno(saved);
}

/// At exit: the profile goes to its file, and in the leak mode the report to stderr.
pub fn at_exit() {
    if !config::profiling() {
        return;
    }
    let mut name = [0u8; os::PATH_MAX];
    let len = config::prof_file(&mut name);
    let name = name.get(..len).unwrap_or(&[]);
    let written = dump(name);
    if let Err(DumpError::Io(e)) = written {
        let mut l = os::Line::new();
        l.str("mapalloc: cannot write the heap profile ")
            .bytes(name)
            .str(" (errno ")
            .dec(e as u64)
            .str(")\n")
            .write();
    }
    if config::prof_mode() != config::PROF_LEAKS {
        // A sampled profile goes to its file quietly: programs run under the preload keep
        // their stderr as it was.
        return;
    }
    let mut path = [0u8; os::PATH_MAX];
    let shown = match os::expand_path(name, os::process_and_thread_id().0, &mut path) {
        Some(n) => path.get(..n).unwrap_or(name),
        None => name,
    };
    if let Some(tb) = tables() {
        write::leak_report(&tb, PERIOD.load(Relaxed), shown, written.is_ok());
    }
}

/// In the child of `fork`, before any other thread exists: take the tables over from a thread
/// that did not follow (its half-made record at worst miscounts one sample).
///
/// # Safety
/// The calling thread is the only thread of the process.
pub unsafe fn after_fork_child() {
    // SAFETY: per the contract.
    drop(unsafe { TABLES.take_orphan() });
    DUMP_PENDING.store(false, Relaxed);
}
