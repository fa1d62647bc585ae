//! Requests that cannot be served return null; they never wrap around or succeed on paper.

use std::alloc::{GlobalAlloc, Layout};

use mapalloc::MapAlloc;

#[test]
fn sizes_beyond_isize_max_fail() {
    for size in [isize::MAX as usize - 4095, isize::MAX as usize] {
        // Layout rejects sizes that overflow isize when rounded; build the largest legal ones.
        if let Ok(layout) = Layout::from_size_align(size, 1) {
            // SAFETY: a valid layout; a null result is the expected answer.
            let p = unsafe { MapAlloc.alloc(layout) };
            assert!(p.is_null(), "alloc({size}) succeeded");
        }
    }
}

#[test]
fn sizes_beyond_the_machine_fail_under_overcommit_heuristics() {
    // 64 TiB: refused by the kernel's default overcommit heuristic (mode 0) and by strict
    // accounting (mode 2); mode 1 grants anything, as it would under glibc.
    let mode = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    if mode.trim() == "1" {
        eprintln!("SKIPPED: vm.overcommit_memory=1 grants any mapping");
        return;
    }
    for align in [1usize, 4096, 1 << 20] {
        let layout = Layout::from_size_align(1 << 46, align).unwrap();
        // SAFETY: a valid layout; null is the expected answer.
        let p = unsafe { MapAlloc.alloc(layout) };
        assert!(p.is_null(), "64 TiB with align {align} succeeded");
        // SAFETY: as above.
        let p = unsafe { MapAlloc.alloc_zeroed(layout) };
        assert!(p.is_null(), "64 TiB zeroed with align {align} succeeded");
    }
    // Growing a live block to an impossible size fails and leaves it intact.
    let layout = Layout::from_size_align(1 << 20, 8).unwrap();
    // SAFETY: valid layout; the block is written within bounds and freed once.
    unsafe {
        let p = MapAlloc.alloc(layout);
        assert!(!p.is_null());
        p.write_bytes(0x5a, 1 << 20);
        let q = MapAlloc.realloc(p, layout, 1 << 46);
        assert!(q.is_null());
        assert!((0..1 << 20).all(|i| *p.add(i) == 0x5a));
        MapAlloc.dealloc(p, layout);
    }
}
