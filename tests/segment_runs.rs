//! Issue 20, item 3: no run of accessible heap memory inside a segment is longer than
//! 512 KiB. Blocks of several sizes are allocated with `MapAlloc` as the global allocator
//! (enough of each to fill a few segments); from a sample of them a forked child writes one
//! byte per OS page forward (or backward) and must die of `SIGSEGV` before it has gone
//! 512 KiB. `/proc/self/maps` cannot show this: guard markers split no mapping.
//!
//! The child only writes to memory and exits: it neither allocates nor takes a lock, so
//! forking from the multi-threaded test process is safe.

use std::alloc::{GlobalAlloc, Layout};

use mapalloc::MapAlloc;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

const STRIDE: usize = 512 << 10;

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Whether a child writing one byte per OS page from `p`, `dir` (+1 or -1) OS pages at a
/// time, for `STRIDE` bytes, dies of `SIGSEGV`.
fn walk_faults(p: *mut u8, dir: isize) -> bool {
    let ps = page_size() as isize;
    // SAFETY: the child touches memory only (no allocation, no lock) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let steps = STRIDE as isize / ps;
        for k in 0..=steps {
            // The first step writes the block itself; the walk then leaves it.
            let q = (p as isize + dir * k * ps) as *mut u8;
            // SAFETY: none: this is the overflow under test, in a child that dies of it.
            unsafe { q.write_volatile(0x5a) };
        }
        // SAFETY: leaves the child without running anything of the parent's.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV
}

fn check_size(size: usize, bytes: usize) {
    let layout = Layout::from_size_align(size, 16).unwrap();
    let n = bytes / size;
    let blocks: Vec<*mut u8> = (0..n)
        .map(|_| {
            // SAFETY: a valid non-zero layout.
            let p = unsafe { GLOBAL.alloc(layout) };
            assert!(!p.is_null());
            p
        })
        .collect();
    // A sample spread over the blocks: every segment they fill, every offset in the stride.
    let samples = 24;
    let mut failures = Vec::new();
    for k in 0..samples {
        let p = blocks[k * (n - 1) / (samples - 1)];
        for dir in [1, -1] {
            if !walk_faults(p, dir) {
                failures.push(format!(
                    "{size}-byte block at {p:p} (offset {:#x} in its segment): a walk of 512 KiB {} did not fault",
                    p as usize & ((4 << 20) - 1),
                    if dir > 0 { "forward" } else { "backward" }
                ));
            }
        }
    }
    for p in blocks {
        // SAFETY: allocated above with `layout`, freed once.
        unsafe { GLOBAL.dealloc(p, layout) };
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn small_blocks_8_bytes() {
    check_size(8, 12 << 20);
}

#[test]
fn small_blocks_4_kib() {
    check_size(4096, 12 << 20);
}

#[test]
fn small_blocks_8_kib() {
    check_size(8192, 12 << 20);
}

#[test]
fn medium_blocks_48_kib() {
    check_size(48 << 10, 12 << 20);
}

#[test]
fn medium_blocks_64_kib_minus_one() {
    // The largest medium class (64 KiB): its pages hold one block fewer.
    check_size((64 << 10) - 16, 12 << 20);
}
