//! `fork` against stdio, and process spawning, from multi-threaded programs under the preload
//! (issue 16's first part; see `tests/c/fork_deadlock.c` for the lock cycle it looks for).
//!
//! Each test runs in the mode the test process inherits: CI runs the suite once plainly and
//! once with `MAPALLOC_STRICT=1`, so each scenario runs its full count in both modes.

mod common;

use common::preload::{compile_c, run, target_dir};
use std::path::PathBuf;

fn bin_dir() -> PathBuf {
    target_dir().join("fork-deadlock-tests")
}

fn mode() -> &'static str {
    match std::env::var("MAPALLOC_STRICT").as_deref() {
        Ok("1") => "strict",
        _ => "default",
    }
}

/// The scenario, 200 processes in a row, each forking 10 times while its threads run
/// `getline`, `fflush(NULL)` and `malloc`/`realloc`/`free`. A hang dies of the program's own
/// watchdog (SIGALRM) and fails the run.
#[test]
fn stdio_fork_scenario_200_runs() {
    const RUNS: usize = 200;
    let bin = compile_c("fork_deadlock.c", &bin_dir());
    let start = std::time::Instant::now();
    for run_no in 0..RUNS {
        let out = run(&bin, &[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with("ok 10 forks"),
            "run {run_no} of {RUNS} ({} mode) failed: {:?}\nstdout: {stdout}\nstderr: {}",
            mode(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!(
        "fork_deadlock: {RUNS} of {RUNS} runs passed in {} mode in {:.1?}",
        mode(),
        start.elapsed()
    );
}

/// `posix_spawn`, `system` and `popen` (no `pthread_atfork` handler runs for them) while
/// three threads allocate.
#[test]
fn spawn_from_threads() {
    let bin = compile_c("spawn_threads.c", &bin_dir());
    let out = run(&bin, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok 100 posix_spawn, 20 system, 20 popen"),
        "{:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
