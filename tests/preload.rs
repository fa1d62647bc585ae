//! External tests of `libmapalloc.so` under `LD_PRELOAD`.
//!
//! Builds the library once (`cargo build --release -p mapalloc-cdylib`),
//! compiles the C/C++ programs in `tests/c/` with `cc`/`c++` into
//! `target/preload-tests/`, and runs them with `LD_PRELOAD` set to the
//! library. Real programs (python3, gcc, git, sqlite3 and the C++ program)
//! run twice, with and without the preload, and their outputs must match.
//!
//! Environment:
//! - `MAPALLOC_TEST_PRELOAD_LIB`: preload this library instead of building
//!   `libmapalloc.so` (e.g. a peer allocator, to validate the tests).
//! - `MAPALLOC_TEST_STATIC_LIB`: the static library for `header_static`
//!   when `MAPALLOC_TEST_PRELOAD_LIB` is set (otherwise that test skips).
//! - `MAPALLOC_TEST_EXPECT_LIB`: the name the `resolve` test expects for the
//!   object providing malloc/free (default `libmapalloc.so`).
//! - `CI`: when set, a missing tool fails the test instead of skipping it.
//! - `MAPALLOC_TEST_VERBOSE`: print every command run and how long it took.

use std::env;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Longest any single command may run before it is killed.
const TIMEOUT: Duration = Duration::from_secs(120);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target directory, found from this test executable's location
/// (`<target>/<profile>/deps/preload-<hash>`), so that CARGO_TARGET_DIR and
/// `build.target-dir` are honoured.
fn target_dir() -> PathBuf {
    env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| root().join("target"))
}

fn work_dir() -> PathBuf {
    target_dir().join("preload-tests")
}

struct Library {
    /// Absolute path of the shared library to preload.
    shared: PathBuf,
    /// The static library for `header_static`, if there is one.
    static_lib: Option<PathBuf>,
}

fn build_library() -> Result<Library, String> {
    if let Some(path) = env::var_os("MAPALLOC_TEST_PRELOAD_LIB") {
        let shared = fs::canonicalize(&path).map_err(|e| {
            format!(
                "MAPALLOC_TEST_PRELOAD_LIB={}: {e}",
                Path::new(&path).display()
            )
        })?;
        let static_lib = match env::var_os("MAPALLOC_TEST_STATIC_LIB") {
            Some(p) => Some(fs::canonicalize(&p).map_err(|e| {
                format!("MAPALLOC_TEST_STATIC_LIB={}: {e}", Path::new(&p).display())
            })?),
            None => None,
        };
        return Ok(Library { shared, static_lib });
    }
    let output = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "mapalloc-cdylib"])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root())
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo build --release -p mapalloc-cdylib` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // Where cargo put the artifacts (it knows about target-dir settings in
    // config files); target/release as a fallback.
    let artifacts = artifact_paths(&String::from_utf8_lossy(&output.stdout));
    let find = |name: &str| {
        artifacts
            .iter()
            .find(|p| p.file_name().is_some_and(|f| f == name))
            .cloned()
            .unwrap_or_else(|| target_dir().join("release").join(name))
    };
    let shared = find("libmapalloc.so");
    let static_lib = find("libmapalloc.a");
    for lib in [&shared, &static_lib] {
        if !lib.is_file() {
            return Err(format!(
                "the build succeeded but {} is missing",
                lib.display()
            ));
        }
    }
    Ok(Library {
        shared,
        static_lib: Some(static_lib),
    })
}

/// The "filenames" of the compiler-artifact messages in cargo's JSON output
/// (a minimal parser: cargo prints one JSON object per line, and these
/// paths contain no escaped characters in practice).
fn artifact_paths(json: &str) -> Vec<PathBuf> {
    const KEY: &str = "\"filenames\":[";
    let mut paths = Vec::new();
    for line in json
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
    {
        let Some(start) = line.find(KEY) else {
            continue;
        };
        let rest = &line[start + KEY.len()..];
        let Some(end) = rest.find(']') else { continue };
        paths.extend(
            rest[..end]
                .split("\",\"")
                .map(|p| PathBuf::from(p.trim_matches('"'))),
        );
    }
    paths
}

/// The library under test, built at most once per test binary.
fn library() -> &'static Library {
    static LIBRARY: OnceLock<Result<Library, String>> = OnceLock::new();
    match LIBRARY.get_or_init(build_library) {
        Ok(lib) => lib,
        Err(msg) => panic!("{msg}"),
    }
}

fn expected_lib_name() -> String {
    env::var("MAPALLOC_TEST_EXPECT_LIB").unwrap_or_else(|_| "libmapalloc.so".to_owned())
}

/// Is `name` an executable on PATH?
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    env::var_os("PATH").is_some_and(|path| {
        env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Says why a test cannot run: fails under CI, otherwise prints a SKIPPED
/// line. Returns so that the caller can `return` afterwards.
fn skip(reason: &str) {
    if env::var_os("CI").is_some() {
        panic!("{reason} (CI is set, so this is a failure, not a skip)");
    }
    // Straight to the process's stderr: the test harness captures eprintln!
    // and would hide the line from a passing test.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
}

/// True if every tool is on PATH; otherwise skips (or fails under CI).
fn have_tools(tools: &[&str]) -> bool {
    for tool in tools {
        if !on_path(tool) {
            skip(&format!("{tool} not found on PATH"));
            return false;
        }
    }
    true
}

/// A fresh, empty directory under target/preload-tests/.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = work_dir().join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("cannot remove {}: {e}", dir.display()));
    }
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

struct Outcome {
    what: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "{}: {}\n--- stdout (end)\n{}\n--- stderr (end)\n{}",
            self.what,
            self.status,
            tail(&self.stdout, 60),
            tail(&self.stderr, 60)
        )
    }

    fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "{}", self.describe());
        self
    }

    /// The test programs print a line "ok" when every check passed.
    fn assert_ok_line(&self) -> &Self {
        assert!(
            self.stdout.lines().any(|l| l == "ok"),
            "no \"ok\" line; {}",
            self.describe()
        );
        self
    }
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs a command to completion with stdout and stderr captured in files
/// (a pipe could be held open by a stray grandchild), killing it after
/// TIMEOUT. Use it through `run_plain` or `run_preloaded`, which set
/// LD_PRELOAD.
fn run(cmd: &mut Command, what: &str) -> Outcome {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let logs = work_dir().join("logs");
    fs::create_dir_all(&logs).expect("create log dir");
    let id = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tag: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect();
    let out_path = logs.join(format!("{}-{id}-{tag}.out", std::process::id()));
    let err_path = logs.join(format!("{}-{id}-{tag}.err", std::process::id()));
    let out_file = fs::File::create(&out_path).expect("create stdout log");
    let err_file = fs::File::create(&err_path).expect("create stderr log");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(err_file)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what}: still running after {TIMEOUT:?}, killed\n--- stdout (end)\n{}\n--- stderr (end)\n{}",
                    tail(&fs::read_to_string(&out_path).unwrap_or_default(), 40),
                    tail(&fs::read_to_string(&err_path).unwrap_or_default(), 40)
                );
            }
            // Waiting for the child with a deadline: std has no wait with a
            // timeout, so poll, starting fast for short commands.
            Ok(None) => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => panic!("{what}: wait failed: {e}"),
        }
    };
    if env::var_os("MAPALLOC_TEST_VERBOSE").is_some() {
        let _ = writeln!(
            std::io::stderr(),
            "{what}: {status} in {:.3?}",
            start.elapsed()
        );
    }
    let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
    let outcome = Outcome {
        what: what.to_owned(),
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    };
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    outcome
}

fn plain(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("LD_PRELOAD")
}

fn preloaded(cmd: &mut Command) -> &mut Command {
    cmd.env("LD_PRELOAD", &library().shared)
}

/// Runs with the library preloaded and checks that the loader did load it.
fn run_preloaded(cmd: &mut Command, what: &str) -> Outcome {
    let outcome = run(preloaded(cmd), &format!("{what} [preloaded]"));
    assert!(
        !outcome.stderr.contains("cannot be preloaded"),
        "the dynamic loader did not preload {}: {}",
        library().shared.display(),
        outcome.describe()
    );
    outcome
}

fn run_plain(cmd: &mut Command, what: &str) -> Outcome {
    run(plain(cmd), &format!("{what} [plain]"))
}

/// Both runs succeeded and printed the same thing.
fn assert_same_stdout(plain: &Outcome, preload: &Outcome) {
    plain.assert_success();
    preload.assert_success();
    if plain.stdout == preload.stdout {
        return;
    }
    let mut msg = format!(
        "{}: stdout differs with and without the preload\n",
        preload.what
    );
    let (a, b): (Vec<&str>, Vec<&str>) = (
        plain.stdout.lines().collect(),
        preload.stdout.lines().collect(),
    );
    let first = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let _ = writeln!(
        msg,
        "({} vs {} lines; first difference at line {})",
        a.len(),
        b.len(),
        first + 1
    );
    let _ = writeln!(msg, "plain:     {:?}", a.get(first));
    let _ = writeln!(msg, "preloaded: {:?}", b.get(first));
    panic!(
        "{msg}\n--- preloaded stderr (end)\n{}",
        tail(&preload.stderr, 30)
    );
}

// ---- compiling the test programs ----

/// Compiles tests/c/<src> into target/preload-tests/bin/<stem>. Returns None
/// (after skipping or failing) if the compiler is missing.
fn compile(src: &str, extra: &[&OsStr]) -> Option<PathBuf> {
    let cxx = src.ends_with(".cpp");
    let compiler = if cxx { "c++" } else { "cc" };
    if !have_tools(&[compiler]) {
        return None;
    }
    let bin_dir = work_dir().join("bin");
    fs::create_dir_all(&bin_dir).expect("create bin dir");
    let stem = Path::new(src).file_stem().expect("file stem");
    let out = bin_dir.join(stem);
    let mut cmd = Command::new(compiler);
    cmd.args(["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread"]);
    if !cxx {
        cmd.arg("-std=gnu11");
    }
    cmd.arg(root().join("tests/c").join(src))
        .arg("-o")
        .arg(&out)
        .args(extra);
    run_plain(&mut cmd, &format!("compile {src}")).assert_success();
    Some(out)
}

/// Compiles a test program and runs it under the preload: exit status 0 and
/// an "ok" line.
fn run_c_test(src: &str, args: &[&str]) -> Option<Outcome> {
    let bin = compile(src, &[OsStr::new("-ldl")])?;
    let outcome = run_preloaded(Command::new(&bin).args(args), src);
    outcome.assert_success().assert_ok_line();
    Some(outcome)
}

// ---- the C programs ----

#[test]
fn api() {
    run_c_test("api.c", &[]);
}

#[test]
fn resolve() {
    let expected = expected_lib_name();
    run_c_test("resolve.c", &[&expected]);
}

#[test]
fn zero_size() {
    run_c_test("zero_size.c", &[]);
}

#[test]
fn threads_exchange() {
    run_c_test("threads_exchange.c", &[]);
}

#[test]
fn threads_large() {
    run_c_test("threads_large.c", &[]);
}

#[test]
fn short_threads() {
    run_c_test("short_threads.c", &[]);
}

/// Allocation and free in C++ `thread_local` destructors and in pthread key destructors that
/// run after mapalloc's own exit hook, threads that only free, and threads whose first
/// allocation happens in the last key-destructor round (their heaps must be reclaimed: the
/// heap count in the exit summary stays small).
#[test]
fn thread_exit() {
    let Some(bin) = compile("thread_exit.cpp", &[]) else {
        return;
    };
    let mut cmd = Command::new(&bin);
    cmd.env("MAPALLOC_STATS", "1");
    let outcome = run_preloaded(&mut cmd, "thread_exit");
    outcome.assert_success().assert_ok_line();
    if env::var_os("MAPALLOC_TEST_PRELOAD_LIB").is_some() {
        return; // another allocator: no mapalloc summary to read
    }
    // "mapalloc: heaps <live> live, <abandoned> abandoned; ..."
    let line = outcome
        .stderr
        .lines()
        .find(|l| l.starts_with("mapalloc: heaps "))
        .unwrap_or_else(|| panic!("no heap summary; {}", outcome.describe()));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .take(2)
        .collect();
    let total = nums[0] + nums[1];
    // 520 threads ran, one at a time; 400 of them never reached mapalloc's exit hook.
    assert!(
        total < 100,
        "{total} heaps for 520 sequential threads ({line}); {}",
        outcome.describe()
    );
}

#[test]
fn fork_stress() {
    run_c_test("fork_stress.c", &[]);
}

#[test]
fn fork_signal() {
    run_c_test("fork_signal.c", &[]);
}

#[test]
fn many_large() {
    run_c_test("many_large.c", &[]);
}

/// About 1 GiB allocated and freed: RSS back under 10% of the peak after 2 s idle, under 5%
/// after `malloc_trim(0)`, which returns 1.
#[test]
fn rss_return() {
    if let Some(out) = run_c_test("rss_return.c", &[]) {
        eprintln!("{}", out.stdout.trim());
    }
}

/// Issue 8 (peak RSS): the library's own resident pages stay small (no `std`, no `libgcc_s`),
/// and a block growing through the size classes does not leave a resident page behind in
/// each of them.
#[test]
fn rss_footprint() {
    if let Some(out) = run_c_test("rss_footprint.c", &[]) {
        eprintln!("{}", out.stdout.trim());
    }
}

/// The shim reads the same `MAPALLOC_*` settings: a bad value warns once and keeps the
/// default; `MAPALLOC_STATS=1` prints the summary at exit.
#[test]
fn settings_under_preload() {
    let out = run_preloaded(
        Command::new("true")
            .env("MAPALLOC_PURGE_DELAY_MS", "later")
            .env("MAPALLOC_VERBOSE", "1"),
        "true with a bad setting",
    );
    out.assert_success();
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(
            "mapalloc: warning: MAPALLOC_PURGE_DELAY_MS=\"later\" is not a whole number from 0 to 3600000; keeping the default"
        ),
        "{}",
        out.describe()
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("mapalloc: settings ") && l.contains("purge_delay_ms=250")),
        "{}",
        out.describe()
    );
    let out = run_preloaded(
        Command::new("true").env("MAPALLOC_STATS", "1"),
        "true with stats",
    );
    out.assert_success();
    assert!(
        out.stderr
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("mapalloc: ")),
        "{}",
        out.describe()
    );
}

/// Instructions per operation of the fast path, as `valgrind --tool=callgrind` counts them in
/// `tests/c/fast_path.c` (each includes about three instructions of loop): a budget that fails
/// the test when a change makes the fast path grow. The README's performance section shows
/// the measured values next to the peers'.
const FAST_PATH_BUDGET: [(&str, &str, u64); 3] = [
    ("measure_pairs", "malloc + free of one 48-byte block", 145),
    ("measure_malloc", "malloc of 48 bytes (100k live)", 62),
    ("measure_free", "free of 48 bytes (100k live)", 76),
];

#[test]
fn fast_path_instruction_budget() {
    if !have_tools(&["valgrind", "callgrind_annotate"]) {
        return;
    }
    let Some(bin) = compile("fast_path.c", &[]) else {
        return;
    };
    let dir = fresh_dir("callgrind");
    let mut cmd = Command::new("valgrind");
    // The budget is the default mode's, also when the suite runs in strict mode.
    cmd.env_remove("MAPALLOC_STRICT")
        .arg("--tool=callgrind")
        .arg("--trace-children=yes")
        .arg(format!(
            "--callgrind-out-file={}",
            dir.join("cg.%p").display()
        ))
        .arg("--toggle-collect=measure_*")
        .arg("env")
        .arg(format!("LD_PRELOAD={}", library().shared.display()))
        .arg(&bin);
    run_plain(&mut cmd, "callgrind fast_path")
        .assert_success()
        .assert_ok_line();
    let n = 100_000u64;
    let mut per_op = Vec::new();
    for entry in fs::read_dir(&dir).expect("read callgrind dir") {
        let path = entry.expect("dir entry").path();
        let annotated = run_plain(
            Command::new("callgrind_annotate")
                .arg("--inclusive=yes")
                .arg(&path),
            "callgrind_annotate",
        );
        annotated.assert_success();
        for line in annotated.stdout.lines() {
            let Some((count, rest)) = line.trim_start().split_once(' ') else {
                continue;
            };
            let Some(name) = FAST_PATH_BUDGET
                .iter()
                .map(|b| b.0)
                .find(|f| rest.contains(&format!(":{f} ")))
            else {
                continue;
            };
            let Ok(count) = count.replace(',', "").parse::<u64>() else {
                continue;
            };
            per_op.push((name, count / n));
        }
    }
    let mut failures = Vec::new();
    for (func, what, budget) in FAST_PATH_BUDGET {
        let got = per_op
            .iter()
            .find(|(f, _)| *f == func)
            .unwrap_or_else(|| panic!("no callgrind count for {func}: {per_op:?}"))
            .1;
        eprintln!("fast path: {what}: {got} instructions (budget {budget})");
        if got > budget {
            failures.push(format!("{what}: {got} instructions > budget {budget}"));
        }
    }
    if env::var_os("MAPALLOC_TEST_PRELOAD_LIB").is_none() {
        assert!(failures.is_empty(), "fast path over budget: {failures:?}");
    }
}

#[test]
fn header_static() {
    if !have_tools(&["cc"]) {
        return;
    }
    let Some(static_lib) = library().static_lib.as_ref() else {
        skip(
            "header_static needs libmapalloc.a: set MAPALLOC_TEST_STATIC_LIB along with MAPALLOC_TEST_PRELOAD_LIB",
        );
        return;
    };
    let include = root().join("include");
    let bin = work_dir().join("bin/header_static");
    fs::create_dir_all(work_dir().join("bin")).expect("create bin dir");
    let mut cmd = Command::new("cc");
    cmd.args([
        "-O2",
        "-g",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pthread",
        "-std=gnu11",
    ])
    .arg("-I")
    .arg(&include)
    .arg(root().join("tests/c/header_static.c"))
    .arg(static_lib)
    .args(["-lpthread", "-ldl", "-lm", "-o"])
    .arg(&bin);
    run_plain(&mut cmd, "compile header_static.c").assert_success();
    run_plain(&mut Command::new(&bin), "header_static")
        .assert_success()
        .assert_ok_line();
}

/// Every replaceable C++ `operator new`/`delete` variant is mapalloc's (the blocks pass
/// `mapalloc_malloc_usable_size`), honours its alignment, and has the standard's failure
/// semantics: the new-handler loop, `std::bad_alloc`, null from the nothrow forms.
#[test]
fn cxx_new() {
    let Some(outcome) = run_c_test("cxx_new.cpp", &[]) else {
        return;
    };
    if env::var_os("MAPALLOC_TEST_PRELOAD_LIB").is_none() {
        assert!(
            outcome.stdout.contains("mapalloc blocks checked"),
            "the operators are not mapalloc's; {}",
            outcome.describe()
        );
    }
}

// ---- real programs, with and without the preload ----

#[test]
fn cxx_containers() {
    let Some(bin) = compile("cxx_containers.cpp", &[]) else {
        return;
    };
    let a = run_plain(&mut Command::new(&bin), "cxx_containers");
    let b = run_preloaded(&mut Command::new(&bin), "cxx_containers");
    assert_same_stdout(&a, &b);
    b.assert_ok_line();
}

#[test]
fn python_churn() {
    if !have_tools(&["python3"]) {
        return;
    }
    let script = root().join("tests/programs/churn.py");
    let python = |cmd: &mut Command| {
        cmd.arg(&script)
            .env("PYTHONMALLOC", "malloc")
            .env("PYTHONHASHSEED", "0")
            .env("PYTHONDONTWRITEBYTECODE", "1");
    };
    let mut c = Command::new("python3");
    python(&mut c);
    let a = run_plain(&mut c, "python3 churn.py");
    let mut c = Command::new("python3");
    python(&mut c);
    let b = run_preloaded(&mut c, "python3 churn.py");
    assert_same_stdout(&a, &b);
    b.assert_ok_line();
}

#[test]
fn gcc_compile_and_run() {
    if !have_tools(&["gcc"]) {
        return;
    }
    let dir = fresh_dir("gcc");
    let mut binaries = Vec::new();
    let mut outputs = Vec::new();
    for preload in [false, true] {
        let sub = dir.join(if preload { "preload" } else { "plain" });
        fs::create_dir_all(&sub).expect("create dir");
        fs::copy(
            root().join("tests/programs/compute.c"),
            sub.join("compute.c"),
        )
        .expect("copy compute.c");
        let mut compile = Command::new("gcc");
        compile
            .args(["-O2", "-Wall", "-o", "prog", "compute.c"])
            .current_dir(&sub);
        let mut exec = Command::new(sub.join("prog"));
        exec.current_dir(&sub);
        if preload {
            run_preloaded(&mut compile, "gcc compute.c").assert_success();
            outputs.push(run_preloaded(&mut exec, "compute"));
        } else {
            run_plain(&mut compile, "gcc compute.c").assert_success();
            outputs.push(run_plain(&mut exec, "compute"));
        }
        binaries.push(fs::read(sub.join("prog")).expect("read binary"));
    }
    assert_same_stdout(&outputs[0], &outputs[1]);
    assert!(
        outputs[0].stdout.contains("primes below"),
        "unexpected output: {}",
        outputs[0].describe()
    );
    assert!(
        binaries[0] == binaries[1],
        "gcc produced different binaries with and without the preload"
    );
}

#[test]
fn sqlite3_workload() {
    if !have_tools(&["sqlite3"]) {
        return;
    }
    let dir = fresh_dir("sqlite3");
    let script = root().join("tests/programs/workload.sql");
    let mut outcomes = Vec::new();
    for preload in [false, true] {
        let db = dir.join(if preload { "preload.db" } else { "plain.db" });
        let mut cmd = Command::new("sqlite3");
        cmd.arg("-batch")
            .arg("-bail")
            .arg(&db)
            .arg(format!(".read {}", script.display()));
        outcomes.push(if preload {
            run_preloaded(&mut cmd, "sqlite3")
        } else {
            run_plain(&mut cmd, "sqlite3")
        });
    }
    assert_same_stdout(&outcomes[0], &outcomes[1]);
    assert!(
        outcomes[1].stdout.lines().any(|l| l == "ok"),
        "integrity_check did not say ok: {}",
        outcomes[1].describe()
    );
}

/// Runs one git command (plain or preloaded) with a fixed identity, dates
/// and no user or system configuration.
fn git(dir: &Path, home: &Path, preload: bool, date: u64, args: &[&str]) -> Outcome {
    let mut cmd = Command::new("git");
    let stamp = format!("{date} +0000");
    cmd.args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Preload Test")
        .env("GIT_AUTHOR_EMAIL", "preload@example.com")
        .env("GIT_COMMITTER_NAME", "Preload Test")
        .env("GIT_COMMITTER_EMAIL", "preload@example.com")
        .env("GIT_AUTHOR_DATE", &stamp)
        .env("GIT_COMMITTER_DATE", &stamp)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env("TZ", "UTC");
    let what = format!("git {}", args.join(" "));
    let outcome = if preload {
        run_preloaded(&mut cmd, &what)
    } else {
        run_plain(&mut cmd, &what)
    };
    outcome.assert_success();
    outcome
}

/// A repository of ~200 commits of generated files; returns what was printed
/// by the inspection commands.
fn git_workload(base: &Path, preload: bool) -> String {
    let home = base.join("home");
    let repo = base.join("repo");
    fs::create_dir_all(&home).expect("create home");
    fs::create_dir_all(&repo).expect("create repo");
    let t0 = 1_700_000_000;
    git(&repo, &home, preload, t0, &["init", "-q", "-b", "main"]);
    git(&repo, &home, preload, t0, &["config", "gc.auto", "0"]);
    let mut files: Vec<String> = Vec::new();
    for i in 0..200u64 {
        let new_file = i % 10 == 0;
        if new_file {
            files.push(format!("dir{}/file{i}.txt", i % 7));
        }
        // modify a few files: append generated lines, sometimes rewrite
        for (k, name) in files.iter().enumerate() {
            // every commit changes at least file i % len and creates its new file
            let touch = (k as u64 + i) & 3 == 0
                || k as u64 == i % files.len() as u64
                || (new_file && k == files.len() - 1);
            if !touch {
                continue;
            }
            let path = repo.join(name);
            fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
            let mut text = fs::read_to_string(&path).unwrap_or_default();
            if i % 9 == 0 {
                text.clear();
            }
            for line in 0..(5 + (i * 7 + k as u64) % 40) {
                let _ = writeln!(
                    text,
                    "commit {i} file {k} line {line} {}",
                    (i * 31 + line * 17) % 1009
                );
            }
            fs::write(&path, text).expect("write file");
        }
        let date = t0 + i * 60;
        if new_file {
            git(&repo, &home, preload, date, &["add", "-A"]);
            git(
                &repo,
                &home,
                preload,
                date,
                &["commit", "-q", "-m", &format!("commit {i}")],
            );
        } else {
            git(
                &repo,
                &home,
                preload,
                date,
                &["commit", "-q", "-a", "-m", &format!("commit {i}")],
            );
        }
    }
    let end = t0 + 200 * 60;
    let mut report = String::new();
    let mut show = |args: &[&str]| {
        let o = git(&repo, &home, preload, end, args);
        let _ = writeln!(report, "$ git {}\n{}", args.join(" "), o.stdout);
    };
    show(&["log", "--format=%s"]);
    show(&["log", "--format=%H %T"]);
    show(&["fsck", "--full", "--strict"]);
    show(&["diff", "--stat", "HEAD~150", "HEAD"]);
    show(&["blame", "--porcelain", "dir0/file0.txt"]);
    show(&["gc", "-q", "--prune=now"]);
    show(&["fsck", "--full", "--strict"]);
    show(&["rev-list", "--all", "--objects", "--count"]);
    show(&["log", "-p", "--format=%s", "-5"]);
    show(&["ls-tree", "-r", "HEAD"]);
    report
}

#[test]
fn git_repository() {
    if !have_tools(&["git"]) {
        return;
    }
    let dir = fresh_dir("git");
    let plain_report = git_workload(&dir.join("plain"), false);
    let preload_report = git_workload(&dir.join("preload"), true);
    assert!(
        plain_report.contains("commit 199\n"),
        "unexpected git log:\n{}",
        tail(&plain_report, 20)
    );
    if plain_report != preload_report {
        let first = plain_report
            .lines()
            .zip(preload_report.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "git output differs with and without the preload at line {}:\nplain:     {:?}\npreloaded: {:?}",
            first + 1,
            plain_report.lines().nth(first),
            preload_report.lines().nth(first)
        );
    }
}

// ---- strict mode ----

/// `tests/c/strict.c` under `MAPALLOC_STRICT=1` (one test: the cases share one binary).
/// `props`: freed memory reads zero, reuse is delayed, allocation order is random,
/// `malloc_usable_size` is the requested size; `props-nozero`: the same but freed blocks keep
/// their bytes under `MAPALLOC_STRICT_ZERO=0`. Then each misuse case dies with the expected
/// signal and, for an abort, exactly one `mapalloc:` line starting with the expected message
/// and an address, with and without the clearing.
#[test]
fn strict_mode() {
    use std::os::unix::process::ExitStatusExt;
    let Some(bin) = compile("strict.c", &[]) else {
        return;
    };
    for (props, zero) in [("props", "1"), ("props-nozero", "0")] {
        run_preloaded(
            Command::new(&bin)
                .arg(props)
                .env("MAPALLOC_STRICT", "1")
                .env("MAPALLOC_STRICT_ZERO", zero),
            &format!("strict {props}"),
        )
        .assert_success()
        .assert_ok_line();
    }
    let cases = [
        (
            "overflow",
            libc::SIGABRT,
            "mapalloc: heap overflow past the end of the block at 0x",
        ),
        (
            "overflow-large",
            libc::SIGABRT,
            "mapalloc: heap overflow past the end of the block at 0x",
        ),
        ("double-free", libc::SIGABRT, "mapalloc: double free of 0x"),
        (
            "corrupt-link",
            libc::SIGABRT,
            "mapalloc: corrupted free list in page at 0x",
        ),
        ("uaf-large", libc::SIGSEGV, ""),
        (
            "write-after-free",
            libc::SIGABRT,
            "mapalloc: write after free of 0x",
        ),
    ];
    let runs = cases.iter().flat_map(|c| {
        // The check of a freed block's cleared bytes needs them cleared.
        let zeros: &[&str] = if c.0 == "write-after-free" {
            &["1"]
        } else {
            &["1", "0"]
        };
        zeros.iter().map(move |z| (*c, *z))
    });
    for ((case, signal, message), zero) in runs {
        let out = run_preloaded(
            Command::new(&bin)
                .arg(case)
                .env("MAPALLOC_STRICT", "1")
                .env("MAPALLOC_STRICT_ZERO", zero),
            &format!("strict {case} (MAPALLOC_STRICT_ZERO={zero})"),
        );
        assert_eq!(out.status.signal(), Some(signal), "{}", out.describe());
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("mapalloc:"))
            .collect();
        if message.is_empty() {
            assert!(lines.is_empty(), "{}", out.describe());
        } else {
            assert!(
                lines.len() == 1 && lines[0].starts_with(message),
                "{case}: expected one line starting with {message:?}; {}",
                out.describe()
            );
        }
    }
}
