//! Language runtimes under the preload (issue 16's sixth part): a JVM and Node.js, each run
//! plainly and under `libmapalloc.so`, with the same output required of both. The mode is the
//! one the test process inherits (CI runs the suite plainly and with `MAPALLOC_STRICT=1`).
//!
//! `.ci/run` installs the runtimes (`default-jdk-headless`, which brings Debian's
//! `default-jre-headless` and the compiler the single-file launcher needs, and `nodejs`); run
//! elsewhere without them, each test says that it skipped and why.

mod common;

use common::preload::{library, root};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(300);

fn on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `tool args` in `tests/programs`, under the preload or not, killed after TIMEOUT.
fn run(tool: &str, args: &[&str], preload: bool) -> Output {
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .current_dir(root().join("tests/programs"))
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if preload {
        cmd.env("LD_PRELOAD", library());
    }
    let mut child = cmd.spawn().expect("start the runtime");
    // Drain the pipes on threads: these programs may print more than a pipe holds.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let o = thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).map(|_| v)
    });
    let e = thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).map(|_| v)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("{tool} {args:?} still running after {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: o.join().expect("stdout thread").expect("read stdout"),
        stderr: e.join().expect("stderr thread").expect("read stderr"),
    }
}

/// The program's output under the preload equals its plain output, ends in "ok", and
/// mapalloc said nothing.
fn same_under_preload(tool: &str, args: &[&str]) {
    if !on_path(tool) {
        // Under CI (`.ci/run` sets CI and installs the runtimes) a missing tool is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} not found on PATH under CI"
        );
        eprintln!("SKIP: {tool} not found on PATH (.ci/run installs it)");
        return;
    }
    let script = args.last().copied().unwrap_or_default();
    assert!(
        root().join("tests/programs").join(script).is_file(),
        "{script} missing"
    );
    let plain = run(tool, args, false);
    assert!(plain.status.success(), "plain run failed: {plain:?}");
    let pre = run(tool, args, true);
    let err = String::from_utf8_lossy(&pre.stderr);
    assert!(
        pre.status.success(),
        "{tool} {args:?} under the preload: {:?}\nstderr: {err}",
        pre.status
    );
    assert!(!err.contains("mapalloc:"), "mapalloc spoke: {err}");
    let (a, b) = (
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&pre.stdout),
    );
    assert_eq!(a, b, "output differs under the preload");
    assert_eq!(b.lines().last(), Some("ok"), "{b}");
}

#[test]
fn jvm_threads_and_a_large_hashmap() {
    same_under_preload("java", &["-Xmx512m", "MapChurn.java"]);
}

#[test]
fn node_map_buffers_zlib_and_a_worker() {
    same_under_preload("node", &["map_zlib.js"]);
}
