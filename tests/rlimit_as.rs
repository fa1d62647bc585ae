//! Allocation under an address-space limit (issue 16's second part): `tests/c/rlimit_as.c`
//! sets `RLIMIT_AS` just above what the process has mapped (as glibc's dynamic-array failure
//! test does) plus 2 or 16 MiB, then allocates until refused. mapalloc must serve at least
//! half the headroom in small blocks, medium blocks and a growing array (glibc serves about
//! all of it), then answer NULL with `ENOMEM` (the program checks), keep every block intact,
//! and serve again once everything is freed. Big (64-512 KiB) and large (1 MiB) blocks must
//! be served too. And at the other limit, `vm.max_map_count`, `free` leaves `errno` alone
//! (`tests/c/free_errno_map_limit.c`). Runs in the mode the test process inherits.

mod common;

use common::preload::{compile_c, run_args, target_dir};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn program() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile_c("rlimit_as.c", &target_dir().join("rlimit-as-tests")))
}

/// Bytes served before the first refusal.
fn served(headroom_mib: u32, workload: &str) -> u64 {
    let h = headroom_mib.to_string();
    let out = run_args(program(), &[&h, workload], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().last() == Some("ok"),
        "{workload} with {headroom_mib} MiB of headroom: {out:?}"
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("served "))
        .and_then(|n| n.parse().ok())
        .expect("a served line")
}

fn at_least(headroom_mib: u32, workload: &str, min: u64) {
    let got = served(headroom_mib, workload);
    assert!(
        got >= min,
        "{workload} with {headroom_mib} MiB of headroom: {got} bytes served, want at least {min}"
    );
}

#[test]
fn two_mib_of_headroom() {
    for w in ["small", "medium", "array"] {
        at_least(2, w, 1 << 20);
    }
    at_least(2, "big", 512 << 10);
    at_least(2, "large", 1 << 20);
}

#[test]
fn sixteen_mib_of_headroom() {
    for w in ["small", "medium", "array", "big"] {
        at_least(16, w, 8 << 20);
    }
    at_least(16, "large", 8 << 20);
}

/// glibc's free-errno scenario: at `vm.max_map_count`, freeing a 16 MiB block (whose
/// `mprotect` or `munmap` now fails for want of a mapping), and blocks of the other kinds,
/// leaves `errno` as it was.
#[test]
fn free_keeps_errno_at_the_mapping_limit() {
    let bin = compile_c(
        "free_errno_map_limit.c",
        &target_dir().join("rlimit-as-tests"),
    );
    let out = run_args(&bin, &[], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    if let Some(why) = stdout.lines().find_map(|l| l.strip_prefix("skip: ")) {
        eprintln!("SKIP free_keeps_errno_at_the_mapping_limit: {why}");
        return;
    }
    assert_eq!(stdout.lines().last(), Some("ok"), "{out:?}");
}
