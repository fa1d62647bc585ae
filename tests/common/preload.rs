//! Running C programs under `LD_PRELOAD` of the built `libmapalloc.so` (for the test files
//! that need only this; `tests/preload.rs` has its own fuller harness).
//!
//! `MAPALLOC_TEST_PRELOAD_LIB` preloads another library instead of building `libmapalloc.so`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(120);

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target directory, from this executable's path (`<target>/<profile>/deps/<exe>`).
pub fn target_dir() -> PathBuf {
    env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| root().join("target"))
}

/// The library to preload, built at most once per test binary.
pub fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        if let Some(p) = env::var_os("MAPALLOC_TEST_PRELOAD_LIB") {
            return fs::canonicalize(&p).expect("MAPALLOC_TEST_PRELOAD_LIB");
        }
        let out = Command::new(env!("CARGO"))
            .args(["build", "--release", "-p", "mapalloc-cdylib"])
            .current_dir(root())
            .env_remove("LD_PRELOAD")
            .stdin(Stdio::null())
            .output()
            .expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build --release -p mapalloc-cdylib failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lib = target_dir().join("release/libmapalloc.so");
        assert!(lib.is_file(), "{} missing after the build", lib.display());
        lib
    })
}

/// Compiles tests/c/<src> (C, `cc -O1 -Wall -Wextra -Werror -pthread -ldl`; C++ with `c++`
/// and `-std=gnu++17` for a `.cpp` source) into `dir`.
pub fn compile_c(src: &str, dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).expect("create bin dir");
    let path = root().join("tests/c").join(src);
    let stem = Path::new(src).file_stem().expect("file stem");
    let out = dir.join(stem);
    let (compiler, std) = if src.ends_with(".cpp") {
        ("c++", "-std=gnu++17")
    } else {
        ("cc", "-std=gnu11")
    };
    let res = Command::new(compiler)
        .args(["-O1", "-g", std, "-Wall", "-Wextra", "-Werror"])
        .args(["-pthread", "-fno-builtin"])
        .arg(&path)
        .arg("-o")
        .arg(&out)
        .arg("-ldl")
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run the C/C++ compiler (install gcc, g++)");
    assert!(
        res.status.success(),
        "compiling {} failed:\n{}",
        path.display(),
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

/// A fresh, empty directory `<parent>/<name>-<pid>` for one test's files.
pub fn scratch(parent: &Path, name: &str) -> PathBuf {
    let d = parent.join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// Runs `bin` under the preload with `env` added, killed after TIMEOUT.
pub fn run(bin: &Path, env: &[(&str, &str)]) -> Output {
    run_args(bin, &[], env)
}

/// [`run`] with command-line arguments.
pub fn run_args(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .env("LD_PRELOAD", library())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start program");
    let start = Instant::now();
    // Polling is fine for these short programs, whose output fits the pipe buffers.
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("{} still running after {TIMEOUT:?}", bin.display());
        }
        thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("collect output")
}
