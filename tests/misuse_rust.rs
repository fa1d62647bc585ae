//! Heap misuse through the Rust face (`MapAlloc` as the global allocator) is detected from
//! metadata and aborts with one line. Each case runs this test binary again as a child
//! process, which prints the address the message must name (`ptr=0x...`) before the misuse;
//! the parent checks the signal and the exact message. Guard hits die of `SIGSEGV`.
//!
//! Every case can run with extra environment variables: `all_cases_strict` (ignored until
//! strict mode exists) runs them all with `MAPALLOC_STRICT=1`.

use std::alloc::{GlobalAlloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use mapalloc::MapAlloc;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

const CASE: &str = "MAPALLOC_MISUSE_CASE";

/// The message each case must end with (`None`: a guard hit, `SIGSEGV` and no message).
const CASES: &[(&str, Option<&str>)] = &[
    ("double_free_small", Some("mapalloc: double free of")),
    ("double_free_small_later", Some("mapalloc: double free of")),
    ("double_free_large", Some("mapalloc: double free of")),
    ("double_free_large_later", Some("mapalloc: double free of")),
    ("interior_free", Some("mapalloc: invalid free of")),
    ("stack_free", Some("mapalloc: invalid free of")),
    ("static_free", Some("mapalloc: invalid free of")),
    ("foreign_free", Some("mapalloc: invalid free of")),
    ("never_allocated_free", Some("mapalloc: invalid free of")),
    (
        "sized_free_too_large",
        Some("mapalloc: sized free with a size larger than the block at"),
    ),
    ("realloc_freed", Some("mapalloc: realloc of freed pointer")),
    (
        "realloc_invalid",
        Some("mapalloc: realloc of invalid pointer"),
    ),
    (
        "usable_size_freed",
        Some("mapalloc: malloc_usable_size of freed pointer"),
    ),
    (
        "usable_size_invalid",
        Some("mapalloc: malloc_usable_size of invalid pointer"),
    ),
    ("guard_large_overflow", None),
];

/// Prints `ptr=<p>` on stdout with `write(2)` (the harness may capture `println!`).
fn announce(p: *const u8) {
    let line = format!("ptr={p:p}\n");
    // SAFETY: writing a valid buffer to fd 1.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

static STATIC_BUF: [u8; 64] = [0; 64];

fn run_case(case: &str) {
    let small = Layout::from_size_align(48, 8).unwrap();
    let large = Layout::from_size_align(4 << 20, 8).unwrap();
    // SAFETY: deliberately wrong uses of the allocator, each expected to abort.
    unsafe {
        match case {
            "double_free_small" => {
                let p = MapAlloc.alloc(small);
                MapAlloc.dealloc(p, small);
                announce(p);
                MapAlloc.dealloc(p, small);
            }
            "double_free_small_later" => {
                let p = MapAlloc.alloc(small);
                let neighbour = MapAlloc.alloc(small);
                MapAlloc.dealloc(p, small);
                // Traffic in many classes, this one included; everything is freed again.
                for round in 0..5 {
                    let v: Vec<Vec<u8>> = (0..10_000).map(|i| vec![round; 16 + i % 3000]).collect();
                    drop(v);
                }
                announce(p);
                MapAlloc.dealloc(p, small);
                MapAlloc.dealloc(neighbour, small);
            }
            "double_free_large" => {
                let p = MapAlloc.alloc(large);
                MapAlloc.dealloc(p, large);
                announce(p);
                MapAlloc.dealloc(p, large);
            }
            "double_free_large_later" => {
                // Freed, then pushed out of the large-block cache and unmapped.
                let l = Layout::from_size_align(600 << 10, 8).unwrap();
                let p = MapAlloc.alloc(l);
                MapAlloc.dealloc(p, l);
                let big = Layout::from_size_align(1 << 20, 8).unwrap();
                let others: Vec<*mut u8> = (0..48).map(|_| MapAlloc.alloc(big)).collect();
                for q in others {
                    MapAlloc.dealloc(q, big);
                }
                announce(p);
                MapAlloc.dealloc(p, l);
            }
            "interior_free" => {
                let p = MapAlloc.alloc(Layout::from_size_align(256, 16).unwrap());
                announce(p.add(32));
                MapAlloc.dealloc(p.add(32), small);
            }
            "stack_free" => {
                let mut x = [0u8; 64];
                announce(x.as_mut_ptr());
                MapAlloc.dealloc(std::hint::black_box(x.as_mut_ptr()), small);
            }
            "static_free" => {
                let p = STATIC_BUF.as_ptr() as *mut u8;
                announce(p);
                MapAlloc.dealloc(std::hint::black_box(p), small);
            }
            "foreign_free" => {
                // A block of glibc's malloc.
                let p = libc::malloc(48) as *mut u8;
                announce(p);
                MapAlloc.dealloc(p, small);
            }
            "never_allocated_free" => {
                // The last block of the 64 KiB page (pages of small blocks start 64 KiB-aligned)
                // of a fresh 1008-byte block: block-aligned, but no block was carved there yet.
                let l = Layout::from_size_align(1008, 16).unwrap();
                let p = MapAlloc.alloc(l);
                let q = ((p as usize & !0xffff) + 1008 * 64) as *mut u8;
                announce(q);
                MapAlloc.dealloc(q, l);
            }
            "sized_free_too_large" => {
                let p = MapAlloc.alloc(small);
                announce(p);
                MapAlloc.dealloc(p, Layout::from_size_align(4096, 8).unwrap());
            }
            "realloc_freed" => {
                let p = MapAlloc.alloc(small);
                let neighbour = MapAlloc.alloc(small);
                MapAlloc.dealloc(p, small);
                announce(p);
                MapAlloc.realloc(p, small, 200);
                MapAlloc.dealloc(neighbour, small);
            }
            "realloc_invalid" => {
                let l = Layout::from_size_align(512, 16).unwrap();
                let p = MapAlloc.alloc(l);
                announce(p.add(64));
                MapAlloc.realloc(p.add(64), l, 1024);
            }
            "usable_size_freed" => {
                let p = MapAlloc.alloc(large);
                MapAlloc.dealloc(p, large);
                announce(p);
                mapalloc::usable_size(p);
            }
            "usable_size_invalid" => {
                let x = [0u8; 32];
                announce(x.as_ptr());
                mapalloc::usable_size(std::hint::black_box(x.as_ptr()));
            }
            "guard_large_overflow" => {
                let p = MapAlloc.alloc(large);
                let n = mapalloc::usable_size(p);
                p.add(n - 1).write_volatile(1);
                announce(p.add(n));
                // Flip the byte: in strict mode the slack holds random canary bytes, and
                // storing the value already there would change nothing.
                p.add(n).write_volatile(!p.add(n).read_volatile());
                // Strict mode keeps a canary in slack after the usable size: the free reports
                // the overflow.
                MapAlloc.dealloc(p, large);
            }
            other => panic!("unknown case {other}"),
        }
    }
}

/// Runs `case` in a child with `env`; checks its signal and its one message line.
fn check(case: &str, env: &[(&str, &str)]) {
    let message = CASES
        .iter()
        .find(|(c, _)| *c == case)
        .unwrap_or_else(|| panic!("no case {case}"))
        .1;
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .envs(env.iter().copied())
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ctx = format!(
        "{case} (env {env:?}): {:?}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    let ptr = stdout
        .lines()
        // The harness prints "test child ... " with no newline before it.
        .find_map(|l| Some(l.split_once("ptr=")?.1))
        .unwrap_or_else(|| panic!("no ptr= line: {ctx}"));
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mapalloc: "))
        .collect();
    match message {
        Some(m) => {
            assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{ctx}");
            assert_eq!(lines, [format!("{m} {ptr}")], "{ctx}");
        }
        None if (env.contains(&("MAPALLOC_STRICT", "1"))
            || std::env::var("MAPALLOC_STRICT").is_ok_and(|v| v == "1"))
            && out.status.signal() == Some(libc::SIGABRT) =>
        {
            assert_eq!(lines.len(), 1, "{ctx}");
            assert!(
                lines[0].starts_with("mapalloc: heap overflow past the end of the block at 0x"),
                "{ctx}"
            );
        }
        None => {
            assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{ctx}");
            assert!(lines.is_empty(), "{ctx}");
        }
    }
}

#[test]
fn child() {
    if let Ok(case) = std::env::var(CASE) {
        run_case(&case);
        // Still alive: the parent sees no signal and reports it.
        std::process::exit(0);
    }
}

#[test]
fn all_cases_strict() {
    for (case, _) in CASES {
        check(case, &[("MAPALLOC_STRICT", "1")]);
    }
}

macro_rules! cases {
    ($($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name), &[]);
            }
        )*
    };
}

cases! {
    double_free_small
    double_free_small_later
    double_free_large
    double_free_large_later
    interior_free
    stack_free
    static_free
    foreign_free
    never_allocated_free
    sized_free_too_large
    realloc_freed
    realloc_invalid
    usable_size_freed
    usable_size_invalid
    guard_large_overflow
}
