//! Purges of locked memory: a program that called `mlockall(MCL_CURRENT | MCL_FUTURE)` frees
//! and reuses memory through many purges (`tests/c/mlock_purge.c`), and must neither abort
//! (`MADV_DONTNEED` refuses locked pages with `EINVAL`) nor see stale data where purged
//! pages must read zero. Runs in the mode the test process inherits.

mod common;

use common::preload::{compile_c, run, target_dir};

#[test]
fn purges_in_a_locked_process() {
    let bin = compile_c("mlock_purge.c", &target_dir().join("mlock-tests"));
    let out = run(&bin, &[("MAPALLOC_PURGE_DELAY_MS", "0")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if let Some(why) = stdout.lines().find(|l| l.starts_with("skipped:")) {
        eprintln!("purges_in_a_locked_process: {why}");
        return;
    }
    assert!(
        out.status.success() && stdout.lines().last() == Some("ok"),
        "{out:?}"
    );
}
