//! Heap misuse through the Rust face is detected from metadata and aborts with one line.
//! Each case runs this test binary again as a child process and checks the signal and the
//! exact message.

use std::alloc::{GlobalAlloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use mapalloc::MapAlloc;

const CASE: &str = "MAPALLOC_MISUSE_CASE";

fn run_case(case: &str) {
    let layout_small = Layout::from_size_align(48, 8).unwrap();
    let layout_large = Layout::from_size_align(4 << 20, 8).unwrap();
    // SAFETY: deliberately wrong uses of the allocator, each expected to abort.
    unsafe {
        match case {
            "double_free_small" => {
                let p = MapAlloc.alloc(layout_small);
                MapAlloc.dealloc(p, layout_small);
                MapAlloc.dealloc(p, layout_small);
            }
            "double_free_small_later" => {
                let p = MapAlloc.alloc(layout_small);
                MapAlloc.dealloc(p, layout_small);
                let mut keep = Vec::new();
                for _ in 0..10_000 {
                    let q = MapAlloc.alloc(Layout::from_size_align(16, 8).unwrap());
                    keep.push(q);
                }
                MapAlloc.dealloc(p, layout_small);
            }
            "double_free_large" => {
                let p = MapAlloc.alloc(layout_large);
                MapAlloc.dealloc(p, layout_large);
                MapAlloc.dealloc(p, layout_large);
            }
            "interior_free" => {
                let p = MapAlloc.alloc(Layout::from_size_align(256, 16).unwrap());
                MapAlloc.dealloc(p.add(32), layout_small);
            }
            "stack_free" => {
                let mut x = [0u8; 64];
                MapAlloc.dealloc(x.as_mut_ptr(), layout_small);
            }
            "foreign_free" => {
                // A block of glibc's malloc (this test binary's global allocator is System).
                let p = libc::malloc(48) as *mut u8;
                MapAlloc.dealloc(p, layout_small);
            }
            "sized_free_too_large" => {
                let p = MapAlloc.alloc(layout_small);
                MapAlloc.dealloc(p, Layout::from_size_align(4096, 8).unwrap());
            }
            other => panic!("unknown case {other}"),
        }
    }
}

fn expect_abort(case: &str, message: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .output()
        .expect("run child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{case}: expected SIGABRT, got {:?}; stderr: {stderr}",
        out.status
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("mapalloc: "))
        .unwrap_or_else(|| panic!("{case}: no mapalloc line in stderr: {stderr}"));
    assert!(
        line.starts_with(message) && line[message.len()..].starts_with("0x"),
        "{case}: message {line:?} does not start with {message:?} and an address"
    );
}

#[test]
fn child() {
    if let Ok(case) = std::env::var(CASE) {
        run_case(&case);
        unreachable!("{case} did not abort");
    }
}

#[test]
fn double_free_small() {
    expect_abort("double_free_small", "mapalloc: double free of ");
}

#[test]
fn double_free_small_after_traffic() {
    expect_abort("double_free_small_later", "mapalloc: double free of ");
}

#[test]
fn double_free_large() {
    expect_abort("double_free_large", "mapalloc: double free of ");
}

#[test]
fn interior_pointer_free() {
    expect_abort("interior_free", "mapalloc: invalid free of ");
}

#[test]
fn stack_pointer_free() {
    expect_abort("stack_free", "mapalloc: invalid free of ");
}

#[test]
fn foreign_pointer_free() {
    expect_abort("foreign_free", "mapalloc: invalid free of ");
}

#[test]
fn sized_free_larger_than_block() {
    expect_abort(
        "sized_free_too_large",
        "mapalloc: sized free with a size larger than the block at ",
    );
}
