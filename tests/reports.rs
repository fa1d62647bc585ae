//! Where mapalloc's lines go (issue 16's third part): the summary and misuse messages reach
//! the program's original stderr after it closed fd 2, never a file that took over the number
//! of mapalloc's private copy, and `MAPALLOC_STATS_FILE` (`%p`: the pid) writes the summary to
//! a file of its own per process. Each test runs in the mode the test process inherits.

mod common;

use common::preload::{compile_c, run_args, target_dir};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn bin_dir() -> PathBuf {
    target_dir().join("reports-tests")
}

/// The test program, compiled once for all tests (they run in parallel).
fn program() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile_c("closed_stderr.c", &bin_dir()))
}

/// A fresh, empty directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    common::preload::scratch(&bin_dir(), name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is_summary(s: &str) -> bool {
    s.starts_with("mapalloc: ") && s.contains(" allocations, ") && s.contains(" frees; live ")
}

#[test]
fn summary_after_the_program_closed_stderr() {
    let bin = program();
    let out = run_args(bin, &["exit"], &[("MAPALLOC_STATS", "1")]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        is_summary(&text(&out.stderr)),
        "no summary after close(2): {out:?}"
    );
    let out = run_args(bin, &["exit"], &[("MAPALLOC_STATS", "0")]);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

#[test]
fn misuse_message_after_the_program_closed_stderr() {
    let out = run_args(program(), &["misuse"], &[]);
    assert_eq!(out.status.signal(), Some(6), "not SIGABRT: {out:?}");
    let err = text(&out.stderr);
    assert!(err.starts_with("mapalloc: double free of 0x"), "{err:?}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
}

/// The program closed every descriptor and put a file of its own on each number: mapalloc's
/// copy of stderr is gone, and its summary must not land in the program's file.
#[test]
fn no_summary_into_a_file_that_took_the_number() {
    let dir = scratch("reuse");
    let victim = dir.join("victim.txt");
    let out = run_args(
        program(),
        &["reuse", victim.to_str().expect("utf-8 path")],
        &[("MAPALLOC_STATS", "1")],
    );
    assert!(out.status.success(), "{out:?}");
    let written = fs::read(&victim).expect("victim file");
    assert!(
        written.is_empty(),
        "mapalloc wrote into the program's file: {:?}",
        text(&written)
    );
}

#[test]
fn stats_file_per_process() {
    let dir = scratch("statsfile");
    let pattern = dir.join("summary.%p.txt");
    let out = run_args(
        program(),
        &["fork"],
        &[("MAPALLOC_STATS_FILE", pattern.to_str().expect("utf-8 path"))],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "summary went to stderr: {:?}",
        text(&out.stderr)
    );
    let child: u32 = text(&out.stdout)
        .trim()
        .strip_prefix("child ")
        .and_then(|p| p.parse().ok())
        .expect("child pid on stdout");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "one file per process: {names:?}");
    assert!(
        names.contains(&format!("summary.{child}.txt")),
        "no file of the child {child}: {names:?}"
    );
    for n in &names {
        let body = text(&fs::read(dir.join(n)).expect("summary file"));
        assert!(is_summary(&body), "{n}: {body:?}");
    }
    // A file that cannot be created falls back to stderr with a warning.
    let out = run_args(
        program(),
        &["exit"],
        &[("MAPALLOC_STATS_FILE", "/nonexistent-dir/summary.%p")],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(
        err.starts_with("mapalloc: warning: cannot create MAPALLOC_STATS_FILE /nonexistent-dir/summary.%p (errno 2)"),
        "{err:?}"
    );
    assert!(err.lines().nth(1).is_some_and(is_summary), "{err:?}");
}
