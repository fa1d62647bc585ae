//! Strict mode through the Rust face. Each case runs this test binary again as a child
//! process with `MAPALLOC_STRICT=1` (this binary's global allocator is mapalloc, so the mode
//! applies from the first allocation) and checks its exit: the signal and the exact message
//! for misuse, success for the properties.

use std::alloc::{GlobalAlloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use mapalloc::MapAlloc;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

const CASE: &str = "MAPALLOC_STRICT_CASE";

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

fn run_case(case: &str) {
    assert_eq!(
        mapalloc::config().strict,
        Some(true),
        "strict mode is not on"
    );
    // SAFETY: the misuse cases are deliberate (each must abort); the property cases use the
    // allocator correctly.
    unsafe {
        match case {
            "overflow_by_one" => {
                let p = MapAlloc.alloc(layout(20));
                // One byte past the request: inside the block's slack, which holds the canary.
                *p.add(20) ^= 0xFF;
                MapAlloc.dealloc(p, layout(20));
            }
            "overflow_large" => {
                // Past the request, inside the block's last 16 bytes: the canary.
                let n = (3 << 20) + 1;
                let p = MapAlloc.alloc(layout(n));
                *p.add(n) ^= 0xFF;
                MapAlloc.dealloc(p, layout(n));
            }
            "overflow_large_to_guard" => {
                // A request that fills its pages ends at the trailing guard.
                let n = 3 << 20;
                let p = MapAlloc.alloc(layout(n));
                std::ptr::write_volatile(p.add(n), 1);
                MapAlloc.dealloc(p, layout(n));
            }
            "double_free_quarantined" => {
                let p = MapAlloc.alloc(layout(48));
                MapAlloc.dealloc(p, layout(48));
                MapAlloc.dealloc(p, layout(48));
            }
            "sized_free_above_request" => {
                // The block's class holds 64 bytes, but only 40 were asked for.
                let p = MapAlloc.alloc(layout(40));
                MapAlloc.dealloc(p, layout(41));
            }
            "properties" => properties(),
            other => panic!("unknown case {other}"),
        }
    }
}

/// Delayed reuse, random order, usable size = request, a mode that cannot change any more,
/// and clearing that can.
unsafe fn properties() {
    // SAFETY: plain correct uses of the allocator.
    unsafe {
        // Small blocks wait in the ring, bigger ones in the FIFO bounded by bytes.
        for n in [100, 8000] {
            let p = MapAlloc.alloc(layout(n));
            MapAlloc.dealloc(p, layout(n));
            let next: Vec<*mut u8> = (0..60).map(|_| MapAlloc.alloc(layout(n))).collect();
            assert!(
                !next.contains(&p),
                "a freed block of {n} bytes came back within 60 allocations"
            );
            for q in next {
                MapAlloc.dealloc(q, layout(n));
            }
        }

        let blocks: Vec<*mut u8> = (0..64).map(|_| MapAlloc.alloc(layout(700))).collect();
        let ascending = blocks.windows(2).filter(|w| w[1] > w[0]).count();
        assert!(
            ascending < 56,
            "{ascending} of 63 consecutive blocks ascend"
        );
        for &b in &blocks {
            assert_eq!(mapalloc::usable_size(b), 700);
            MapAlloc.dealloc(b, layout(700));
        }

        // realloc keeps the contents, in place and when moving, and the canary follows.
        let mut p = MapAlloc.alloc(layout(10));
        p.copy_from_nonoverlapping(b"0123456789".as_ptr(), 10);
        for new in [12, 5000, 2 << 20, 6 << 20, 100] {
            let old = usable(p);
            p = MapAlloc.realloc(p, layout(old), new);
            assert!(!p.is_null());
            assert_eq!(std::slice::from_raw_parts(p, 10), b"0123456789");
            assert_eq!(mapalloc::usable_size(p), new);
        }
        MapAlloc.dealloc(p, layout(100));

        // Zeroed allocations are zero, small and large.
        for n in [1usize, 64, 5000, 1 << 20] {
            let z = MapAlloc.alloc_zeroed(layout(n));
            assert!(std::slice::from_raw_parts(z, n).iter().all(|&b| b == 0));
            MapAlloc.dealloc(z, layout(n));
        }

        assert_eq!(
            mapalloc::configure(&mapalloc::Config {
                strict: Some(false),
                ..Default::default()
            }),
            Err(mapalloc::ConfigError::StrictAfterFirstAllocation)
        );

        // Clearing freed blocks can be switched off and on again at any time (the C test
        // `strict props-nozero` observes the difference), with blocks freed either way.
        for zero in [false, true] {
            let set = mapalloc::Config {
                strict_zero: Some(zero),
                ..Default::default()
            };
            assert_eq!(mapalloc::configure(&set), Ok(()));
            assert_eq!(mapalloc::config().strict_zero, Some(zero));
            let sizes = [24, 700, 9000, 3 << 20];
            let blocks: Vec<*mut u8> = sizes.iter().map(|&n| MapAlloc.alloc(layout(n))).collect();
            for (b, n) in blocks.into_iter().zip(sizes) {
                b.write_bytes(0xA5, n);
                MapAlloc.dealloc(b, layout(n));
            }
        }
    }
}

/// # Safety
/// `p` is a live block of mapalloc's.
unsafe fn usable(p: *mut u8) -> usize {
    // SAFETY: forwarded.
    unsafe { mapalloc::usable_size(p) }
}

fn run_child(case: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .env("MAPALLOC_STRICT", "1")
        .output()
        .expect("run child")
}

fn expect_abort(case: &str, message: &str) {
    let out = run_child(case);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{case}: expected SIGABRT, got {:?}; stderr: {stderr}",
        out.status
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mapalloc: "))
        .collect();
    assert!(
        lines.len() == 1
            && lines[0].starts_with(message)
            && lines[0][message.len()..].starts_with("0x"),
        "{case}: expected one line starting with {message:?} and an address; stderr: {stderr}"
    );
}

#[test]
fn child() {
    if let Ok(case) = std::env::var(CASE) {
        run_case(&case);
        if case != "properties" {
            unreachable!("{case} did not abort");
        }
    }
}

#[test]
fn overflow_by_one_byte_into_slack() {
    expect_abort(
        "overflow_by_one",
        "mapalloc: heap overflow past the end of the block at ",
    );
}

#[test]
fn overflow_of_a_large_block() {
    expect_abort(
        "overflow_large",
        "mapalloc: heap overflow past the end of the block at ",
    );
}

#[test]
fn overflow_of_a_large_block_to_its_guard() {
    let out = run_child("overflow_large_to_guard");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "expected SIGSEGV, got {:?}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn double_free_of_a_quarantined_block() {
    expect_abort("double_free_quarantined", "mapalloc: double free of ");
}

#[test]
fn sized_free_above_the_request() {
    expect_abort(
        "sized_free_above_request",
        "mapalloc: sized free with a size larger than the block at ",
    );
}

#[test]
fn properties_hold() {
    let out = run_child("properties");
    assert!(
        out.status.success(),
        "properties: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
