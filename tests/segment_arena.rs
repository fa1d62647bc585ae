//! Fresh segments are mapped sixteen at a time (after a first arena of two, which keeps
//! short-lived programs' start-up cheap), with the guards of all of them installed by one
//! call: filling a dozen segments costs a couple of `mmap`s and guard calls, not three or
//! four syscalls per segment, and unmaps nothing.

use std::alloc::{GlobalAlloc, Layout};

use mapalloc::MapAlloc;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

#[test]
fn a_dozen_segments_cost_two_arenas_at_most() {
    // Blocks of 48 KiB live in segments of the medium kind: about 70 per 4 MiB segment.
    let layout = Layout::from_size_align(48 << 10, 16).unwrap();
    let before = mapalloc::stats();
    let mut blocks = Vec::with_capacity(1000);
    for k in 0..900usize {
        let i = k as u8;
        // SAFETY: a valid layout; each block is written in bounds and freed once below.
        let p = unsafe { GLOBAL.alloc(layout) };
        assert!(!p.is_null());
        // SAFETY: `p` is a live block of `layout.size()` bytes.
        unsafe { p.write_bytes(i, layout.size()) };
        blocks.push(p);
    }
    let after = mapalloc::stats();
    let new_segments = (after.segment_bytes - before.segment_bytes) >> 22;
    assert!(new_segments >= 10, "only {new_segments} new segments");
    // Two arenas at most (the test harness may have used part of the first two), each one mmap
    // and one guard call for the guards of all sixteen segments (without `process_madvise`,
    // one `madvise` per guard, or one `mprotect` per guard without guard markers: the
    // metadata, end and seven interior guards of each segment).
    let maps = after.mmap - before.mmap;
    assert!(maps <= 2, "{maps} mmaps for {new_segments} segments");
    assert_eq!(
        after.munmap, before.munmap,
        "mapping segments unmapped something"
    );
    // Strict mode lays out guards inside every segment it hands out, one call or more each.
    if mapalloc::config().strict != Some(true) {
        let guards = (after.madvise - before.madvise) + (after.mprotect - before.mprotect);
        let per_arena = if vectored_guards() { 1 } else { 9 * 16 };
        assert!(
            guards <= 2 * per_arena,
            "{guards} guard calls for {new_segments} segments"
        );
    }
    for (i, &p) in blocks.iter().enumerate() {
        // SAFETY: allocated above with `layout`, freed once.
        unsafe {
            assert_eq!(*p.add(layout.size() - 1), i as u8);
            GLOBAL.dealloc(p, layout);
        }
    }
}

/// Whether this kernel installs guard markers over several ranges in one call
/// (`process_madvise(PIDFD_SELF, ..., MADV_GUARD_INSTALL)`, Linux 6.15+).
fn vectored_guards() -> bool {
    // SAFETY: a fresh private mapping of two pages, advised and unmapped here only.
    unsafe {
        let ps = libc::sysconf(libc::_SC_PAGESIZE) as usize;
        let p = libc::mmap(
            std::ptr::null_mut(),
            2 * ps,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let iov = [libc::iovec {
            iov_base: p,
            iov_len: ps,
        }];
        let r = libc::syscall(libc::SYS_process_madvise, -10000, iov.as_ptr(), 1, 102, 0);
        libc::munmap(p, 2 * ps);
        r == ps as libc::c_long
    }
}
