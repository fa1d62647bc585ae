//! Large blocks: reuse through the cache (no syscall per malloc/free but the two `mprotect`s
//! that close a freed block and open it again), growth by mremap, guard pages on both sides.

use std::alloc::{GlobalAlloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::Mutex;

use mapalloc::MapAlloc;

/// The counters are process-wide: tests that read them run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn strict() -> bool {
    mapalloc::config().strict == Some(true)
}

fn syscalls() -> u64 {
    let s = mapalloc::stats();
    s.mmap + s.munmap + s.mprotect + s.madvise + s.mremap
}

#[test]
fn malloc_free_loop_costs_no_syscall_per_call() {
    let _g = SERIAL.lock().unwrap();
    for size in [600 << 10, 1 << 20, 3 << 20, 24 << 20] {
        let layout = Layout::from_size_align(size, 16).unwrap();
        // SAFETY: valid layouts; each block is written in bounds and freed once.
        unsafe {
            let p = MapAlloc.alloc(layout);
            assert!(!p.is_null());
            MapAlloc.dealloc(p, layout);
            let before = syscalls();
            for i in 0..2000 {
                let p = MapAlloc.alloc(layout);
                assert!(!p.is_null());
                p.add(i % size).write(1);
                MapAlloc.dealloc(p, layout);
            }
            let spent = syscalls() - before;
            // A freed large block is PROT_NONE while it is cached and opened again when it is
            // reused: two mprotects per malloc/free, and nothing else.
            // Strict mode maps its first blocks afresh while the blocks freed last are kept
            // out of reach (`large::STRICT_REUSE_DELAY`, four): a mapping and a guard call each,
            // and their eviction later.
            let allowed = 4 + 2 * 2000 + if strict() { 4 * 4 } else { 0 };
            assert!(
                spent <= allowed,
                "{spent} syscalls for 2000 malloc/free of {size} bytes"
            );
        }
    }
}

#[test]
fn growing_realloc_moves_pages_with_mremap() {
    let _g = SERIAL.lock().unwrap();
    let mut size = 1usize << 20;
    let layout = Layout::from_size_align(size, 16).unwrap();
    // SAFETY: valid layouts; the block is only accessed within its current size.
    unsafe {
        let mut p = MapAlloc.alloc(layout);
        assert!(!p.is_null());
        for i in 0..size {
            *p.add(i) = (i % 251) as u8;
        }
        let mut filled = size;
        while size < 128 << 20 {
            let before = mapalloc::stats().mremap;
            let new = size * 2;
            p = MapAlloc.realloc(p, Layout::from_size_align(size, 16).unwrap(), new);
            assert!(!p.is_null());
            assert!(
                mapalloc::stats().mremap > before,
                "growth to {new} did not use mremap"
            );
            assert!(
                (0..filled)
                    .step_by(4093)
                    .all(|i| *p.add(i) == (i % 251) as u8)
            );
            for i in filled..new {
                *p.add(i) = (i % 251) as u8;
            }
            filled = new;
            size = new;
        }
        assert!((0..filled).all(|i| *p.add(i) == (i % 251) as u8));
        MapAlloc.dealloc(p, Layout::from_size_align(size, 16).unwrap());
    }
}

/// A loop that grows blocks by doubling and frees them, as vectors do, moves the pages with one
/// `mremap` per growth (never a copy) and makes a bounded number of mapping calls per growth.
/// (Moving the pages into a bigger cached block instead, with `MREMAP_DONTUNMAP`, saved the
/// mapping calls but split the cached block into two mappings, so its next growth could not
/// be moved: `mremap` fails with EFAULT across mappings.)
#[test]
fn doubling_growth_loop_costs_one_mremap_per_growth() {
    let _g = SERIAL.lock().unwrap();
    if strict() {
        // Strict mode fences cached blocks and grows the old way.
        return;
    }
    // No cached block may age out while the loop runs, however slow the machine.
    let saved = mapalloc::config();
    let mut c = saved;
    c.purge_delay_ms = Some(3_600_000);
    c.large_cache_bytes = Some(128 << 20);
    mapalloc::configure(&c).unwrap();
    let round = || {
        let mut size = 1usize << 20;
        // SAFETY: valid layouts; the block is only accessed within its current size.
        unsafe {
            let p = MapAlloc.alloc(Layout::from_size_align(size, 16).unwrap());
            assert!(!p.is_null());
            p.write_bytes(7, size);
            let mut p = p;
            while size < 16 << 20 {
                let new = size * 2;
                p = MapAlloc.realloc(p, Layout::from_size_align(size, 16).unwrap(), new);
                assert!(!p.is_null());
                assert!(
                    *p.add(size - 1) == 7 && *p == 7,
                    "data lost growing to {new}"
                );
                p.add(size).write_bytes(7, new - size);
                size = new;
            }
            MapAlloc.dealloc(p, Layout::from_size_align(size, 16).unwrap());
        }
    };
    round();
    let before = mapalloc::stats();
    const ROUNDS: u64 = 10;
    for _ in 0..ROUNDS {
        round();
    }
    let after = mapalloc::stats();
    let growths = 4 * ROUNDS;
    assert!(
        after.mremap - before.mremap <= growths,
        "{} mremaps for {growths} growths",
        after.mremap - before.mremap
    );
    // Each growth: a new guarded range (one `mmap`, its guards), one `mremap` moving the
    // pages into it, and the old guards released; each round's first block is mapped afresh.
    let maps = growths + ROUNDS;
    let d = |a: u64, b: u64| a - b;
    assert!(d(after.mmap, before.mmap) <= maps, "mmaps");
    assert!(
        d(
            after.madvise + after.mprotect,
            before.madvise + before.mprotect
        ) <= 2 * maps,
        "guard calls"
    );
    assert!(
        d(after.munmap, before.munmap) <= 2 * growths + ROUNDS,
        "munmaps"
    );
    // Leave no cached block behind for the other tests.
    mapalloc::configure(&saved).unwrap();
    mapalloc::trim();
}

/// Page faults taken by the calling thread so far.
fn thread_faults() -> i64 {
    // SAFETY: `ru` is a valid out-pointer; RUSAGE_THREAD exists on Linux 2.6.26+.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut ru), 0);
        ru.ru_minflt
    }
}

/// A request that no cached block fits grows a smaller cached one with `mremap`: its resident
/// pages serve the new block, which faults in only what it adds. (Strict mode opens the fenced
/// cached block first.) Nothing of the grown block stays behind in the cache: a smaller
/// request afterwards reuses the grown block's resident pages.
#[test]
fn larger_request_grows_a_cached_block() {
    let _g = SERIAL.lock().unwrap();
    if strict() {
        // Strict mode keeps the blocks freed last out of reach (`large::STRICT_REUSE_DELAY`;
        // tests/c/strict.c checks that): the request maps afresh.
        return;
    }
    let small = Layout::from_size_align(8 << 20, 16).unwrap();
    let big = Layout::from_size_align(12 << 20, 16).unwrap();
    let ps = 4096;
    // SAFETY: valid layouts; blocks are written in bounds and freed once.
    unsafe {
        let p = MapAlloc.alloc(small);
        assert!(!p.is_null());
        for i in (0..small.size()).step_by(ps) {
            *p.add(i) = 1;
        }
        MapAlloc.dealloc(p, small);
        let remaps = mapalloc::stats().mremap;
        let faults = thread_faults();
        let q = MapAlloc.alloc(big);
        assert!(!q.is_null());
        for i in (0..big.size()).step_by(ps) {
            *q.add(i) = 2;
        }
        let taken = thread_faults() - faults;
        assert!(mapalloc::stats().mremap > remaps, "no mremap");
        // 12 MiB fresh would be 3072 faults of 4 KiB pages; the grown block adds 4 MiB.
        assert!(
            taken < ((big.size() - small.size()) / ps + 256) as i64,
            "{taken} faults: the cached pages were not reused"
        );
        assert!(mapalloc::usable_size(q) >= big.size());
        MapAlloc.dealloc(q, big);
        // The only cached block is the grown one, resident: an 8 MiB request takes it. An
        // emptied shell of the old block, had it been cached, would fit better and fault in
        // every page again.
        let faults = thread_faults();
        let r = MapAlloc.alloc(small);
        assert!(!r.is_null());
        for i in (0..small.size()).step_by(ps) {
            *r.add(i) = 3;
        }
        let taken = thread_faults() - faults;
        assert!(
            taken < 256,
            "{taken} faults: a smaller request after the growth did not reuse resident pages"
        );
        MapAlloc.dealloc(r, small);
    }
}

const CASE: &str = "MAPALLOC_GUARD_CASE";

#[test]
fn child() {
    let Ok(case) = std::env::var(CASE) else {
        return;
    };
    let size = 2 << 20;
    let layout = Layout::from_size_align(size, 16).unwrap();
    // SAFETY: deliberately touches the guard page next to a live block: must fault.
    unsafe {
        let p = MapAlloc.alloc(layout);
        // The block ends at its pages' end, against the trailing guard, in both modes (the
        // request is a multiple of 16: strict mode's canary needs no byte of it).
        let end = mapalloc::usable_size(p);
        match case.as_str() {
            "after" => std::ptr::write_volatile(p.add(end), 1u8),
            "before" => std::ptr::write_volatile(p.sub(1), 1u8),
            _ => unreachable!(),
        }
    }
    unreachable!("guard of case {case} did not fault");
}

fn expect_segv(case: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "{case}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn guard_page_after_large_block() {
    expect_segv("after");
}

#[test]
fn guard_page_before_large_block() {
    expect_segv("before");
}
