//! Heap profiles and leak reports (issue 19), from outside: `tests/c/prof_leaks.c` leaks
//! known amounts from known functions under the preload with `MAPALLOC_PROF`, and the profile
//! it leaves is read back (`common::profile`, symbolised with `nm`) and, where it is
//! installed, opened with gperftools' `google-pprof`. Each test runs in the mode the test
//! process inherits (CI runs the suite again with `MAPALLOC_STRICT=1`).

mod common;

use common::preload::{compile_c, run_args, target_dir};
use common::profile::{Profile, attribute, parse};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn bin_dir() -> PathBuf {
    target_dir().join("profile-tests")
}

fn program() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile_c("prof_leaks.c", &bin_dir()))
}

fn scratch(name: &str) -> PathBuf {
    common::preload::scratch(&bin_dir(), name)
}

/// Run the program with `args` and `env`; returns its stdout and stderr, asserting success.
fn run(args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let out = run_args(program(), args, env);
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "{args:?} failed: {:?}\n{so}\n{se}",
        out.status
    );
    (so, se)
}

/// The profile files in `dir` whose names start with `prefix`, with their pids.
fn profiles(dir: &Path, prefix: &str) -> Vec<(u32, PathBuf)> {
    let mut v: Vec<(u32, PathBuf)> = fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_string();
            let pid = name.strip_prefix(prefix)?.split('.').next()?.parse().ok()?;
            Some((pid, p))
        })
        .collect();
    v.sort();
    v
}

fn read(path: &Path) -> Profile {
    parse(&fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

const TARGETS: [&str; 4] = ["leak_a", "leak_b", "leak_c", "no_leak"];
/// What `leaks 1` leaks from each function.
const LEAKED: [(&str, f64); 3] = [("leak_a", 4e6), ("leak_b", 3e6), ("leak_c", 2e6)];

fn live(a: &HashMap<String, (f64, f64)>, who: &str) -> f64 {
    a.get(who).map_or(0.0, |e| e.0)
}

/// Each leaking function holds its bytes within `tolerance` (a fraction), at least 90% of the
/// live bytes are attributed to the three of them, and the function that frees everything
/// holds nothing but did allocate.
fn check_leaks(p: &Profile, scale: f64, tolerance: f64) {
    let a = attribute(p, &TARGETS);
    for (who, bytes) in LEAKED {
        let got = live(&a, who);
        let want = bytes * scale;
        assert!(
            (got / want - 1.0).abs() <= tolerance,
            "{who}: {got:.0} live bytes estimated, {want:.0} leaked ({a:?})"
        );
    }
    let total: f64 = a.values().map(|e| e.0).sum();
    let right: f64 = LEAKED.iter().map(|(w, _)| live(&a, w)).sum();
    assert!(
        right >= 0.9 * total,
        "only {right:.0} of {total:.0} live bytes in the leaking functions: {a:?}"
    );
    assert_eq!(live(&a, "no_leak"), 0.0, "no_leak frees everything: {a:?}");
    assert!(
        a.get("no_leak").is_some_and(|e| e.1 > 0.0),
        "no_leak's allocations are in the profile: {a:?}"
    );
}

#[test]
fn leak_report_is_exact_and_attributed() {
    let dir = scratch("leaks");
    let file = format!("{}/prof.%p.leaks", dir.display());
    let (_, err) = run(
        &["leaks"],
        &[("MAPALLOC_PROF", "leaks"), ("MAPALLOC_PROF_FILE", &file)],
    );
    let files = profiles(&dir, "prof.");
    assert_eq!(files.len(), 1, "one profile: {files:?}");
    let p = read(&files[0].1);
    assert_eq!(p.period, 1, "the leak report records every allocation");
    check_leaks(&p, 1.0, 0.0);
    // The summary on stderr names the file and the amounts.
    let name = files[0].1.display().to_string();
    assert!(
        err.contains("mapalloc: leaks: ") && err.contains(&name),
        "stderr: {err}"
    );
    assert!(
        err.contains("4000000 bytes in 4000 blocks at "),
        "heaviest stacks listed: {err}"
    );
}

#[test]
fn sampled_profile_estimates_each_call_site() {
    let dir = scratch("sampled");
    let file = format!("{}/prof.%p.heap", dir.display());
    run(
        &["leaks", "4"],
        &[
            ("MAPALLOC_PROF", "1"),
            ("MAPALLOC_PROF_SAMPLE", "16384"),
            ("MAPALLOC_PROF_FILE", &file),
        ],
    );
    let files = profiles(&dir, "prof.");
    let p = read(&files[0].1);
    assert_eq!(p.period, 16384);
    // About 1,000 samples of leak_a's 16 MB: a standard error near 3%.
    check_leaks(&p, 4.0, 0.2);
    // Sampled, not every allocation: leak_a's 16,000 blocks gave far fewer samples.
    let samples: u64 = p.stacks.iter().map(|s| s.alloc_count).sum();
    assert!(samples < 16_000, "{samples} samples");
}

#[test]
fn default_rate_profile_written_at_exit() {
    let dir = scratch("default");
    // The default file name, in the working directory.
    let out = Command::new(program())
        .args(["leaks", "16"])
        .current_dir(&dir)
        .env("LD_PRELOAD", common::preload::library())
        .env("MAPALLOC_PROF", "1")
        .output()
        .expect("run");
    assert!(out.status.success());
    let files = profiles(&dir, "mapalloc.");
    assert_eq!(files.len(), 1, "mapalloc.<pid>.heap: {files:?}");
    assert!(files[0].1.to_str().unwrap().ends_with(".heap"));
    let p = read(&files[0].1);
    assert_eq!(p.period, 512 << 10);
    // 64 MB at 512 KiB: about 128 samples for leak_a, a standard error near 9%.
    check_leaks(&p, 16.0, 0.4);
}

#[test]
fn threads_fork_and_thread_exit() {
    let dir = scratch("threads");
    let file = format!("{}/prof.%p.leaks", dir.display());
    let (out, _) = run(
        &["threads"],
        &[("MAPALLOC_PROF", "leaks"), ("MAPALLOC_PROF_FILE", &file)],
    );
    assert!(out.contains("child done") && out.contains("done"));
    let files = profiles(&dir, "prof.");
    assert_eq!(
        files.len(),
        2,
        "parent and child each write their own: {files:?}"
    );
    let targets = ["thread_leak", "child_leak"];
    let mut seen = Vec::new();
    for (_, f) in &files {
        let a = attribute(&read(f), &targets);
        seen.push((live(&a, "thread_leak"), live(&a, "child_leak")));
    }
    seen.sort_by(|x, y| x.1.total_cmp(&y.1));
    // Parent: the blocks of 4 exited threads, half freed by main: 4 x 250 x 2000 B.
    assert_eq!(seen[0], (2e6, 0.0), "parent: {seen:?}");
    // Child: threads 0 and 1's halves freed as well, and its own leak.
    assert_eq!(seen[1], (1e6, 5e5), "child: {seen:?}");
}

#[test]
fn signal_dumps_the_live_heap() {
    let dir = scratch("signal");
    let file = format!("{}/prof.heap", dir.display());
    run(
        &["signal"],
        &[
            ("MAPALLOC_PROF", "leaks"),
            ("MAPALLOC_PROF_SIGNAL", "1"),
            ("MAPALLOC_PROF_FILE", &file),
        ],
    );
    let first = attribute(&read(&dir.join("prof.heap.1")), &TARGETS);
    assert_eq!(live(&first, "leak_a"), 4e6, "{first:?}");
    assert_eq!(
        live(&first, "leak_b"),
        0.0,
        "leak_b runs after the signal: {first:?}"
    );
    let last = attribute(&read(&dir.join("prof.heap")), &TARGETS);
    assert_eq!(
        (live(&last, "leak_a"), live(&last, "leak_b")),
        (4e6, 3e6),
        "{last:?}"
    );
}

#[test]
fn dump_on_request_and_refused_when_off() {
    let dir = scratch("dump");
    let path = format!("{}/asked.%p.heap", dir.display());
    let (out, _) = run(&["dump", &path], &[("MAPALLOC_PROF", "leaks")]);
    assert!(out.contains("dump=0 errno=0"), "{out}");
    let files = profiles(&dir, "asked.");
    assert_eq!(files.len(), 1);
    let a = attribute(&read(&files[0].1), &TARGETS);
    assert_eq!(live(&a, "leak_a"), 4e6, "{a:?}");
    // Profiling off: EINVAL, and no file at exit either.
    let off = scratch("dump-off");
    let path = format!("{}/asked.heap", off.display());
    let out = Command::new(program())
        .args(["dump", &path])
        .current_dir(&off)
        .env("LD_PRELOAD", common::preload::library())
        .env_remove("MAPALLOC_PROF")
        .output()
        .expect("run");
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(so.contains("dump=-1 errno=22"), "{so}");
    assert_eq!(
        fs::read_dir(&off).unwrap().count(),
        0,
        "nothing written when off"
    );
}

/// gperftools' `pprof` (Debian's `google-pprof`) reads the profile and names the functions.
#[test]
fn google_pprof_reads_the_profile() {
    let have = Command::new("google-pprof")
        .arg("--version")
        .output()
        .is_ok();
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "google-pprof missing (apt-get install google-perftools)"
        );
        eprintln!("skipped: google-pprof is not installed");
        return;
    }
    let dir = scratch("pprof");
    let file = format!("{}/prof.heap", dir.display());
    run(
        &["leaks"],
        &[
            ("MAPALLOC_PROF", "1"),
            ("MAPALLOC_PROF_SAMPLE", "4096"),
            ("MAPALLOC_PROF_FILE", &file),
        ],
    );
    let out = Command::new("google-pprof")
        .args(["--text", "--lines"])
        .arg(program())
        .arg(&file)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run google-pprof");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["leak_a", "leak_b", "leak_c"] {
        assert!(text.contains(f), "{f} missing from pprof's report:\n{text}");
    }
    assert!(
        text.contains("prof_leaks.c:"),
        "file:line from the debug info:\n{text}"
    );
}
