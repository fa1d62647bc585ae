//! `mapalloc-run`: run any program under `libmapalloc.so`, or a built-in demo workload.
//!
//! ```sh
//! cargo run --release                         # the demo workload, under the preload
//! cargo run --release -- python3 script.py    # any program, under the preload
//! ```
//!
//! It builds the library (`cargo build --release -p mapalloc-cdylib`) unless `MAPALLOC_LIB`
//! names one, then runs the program with `LD_PRELOAD` set to it and `MAPALLOC_STATS=1` (unless
//! already set), so the library prints its summary to stderr when the program exits. The exit
//! status is the program's (128 + signal number when it was killed by a signal).
//!
//! With `--profile` (or `--leaks`) the program runs with `MAPALLOC_PROF=1` (`leaks`) and
//! `MAPALLOC_PROF_FILE` naming a file per process in the profile directory; then
//! `mapalloc-prof` (built with `cargo build --release -p mapalloc-prof` unless
//! `MAPALLOC_PROF_TOOL` names one) reads the top process's profile and prints its report and
//! the paths of its flame graphs. Options go before the program's name: everything from the
//! program's name on is the program's.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, OsString};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Instant;

const DEMO_FLAG: &str = "--mapalloc-demo-workload";

const USAGE: &str = "usage: mapalloc-run [OPTIONS] [PROGRAM [ARGS...]]

Runs PROGRAM under libmapalloc.so (LD_PRELOAD, MAPALLOC_STATS=1 unless set), or the
built-in demo workload when no program is named. The exit status is the program's.

Options (before PROGRAM; `--` ends them):
  --profile          heap profile: runs with MAPALLOC_PROF=1 (sampled), then prints
                     mapalloc-prof's top ten call sites and writes flame graphs
  --leaks            leak report: every allocation recorded (MAPALLOC_PROF=leaks);
                     implies --profile
  --profile-dir DIR  where profiles and graphs go (default: mapalloc-profile); the
                     profiles and graphs of an earlier run in it are removed first;
                     implies --profile
  -h, --help         this text

Environment: MAPALLOC_LIB names a prebuilt libmapalloc.so, MAPALLOC_PROF_TOOL a
prebuilt mapalloc-prof (otherwise both are built with cargo).";

/// How the program is profiled.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ProfMode {
    /// `MAPALLOC_PROF=1`: sampled heap profile, `mapalloc.<pid>.heap`.
    Sampled,
    /// `MAPALLOC_PROF=leaks`: every allocation, `mapalloc.<pid>.leaks`.
    Leaks,
}

impl ProfMode {
    fn env_value(self) -> &'static str {
        match self {
            ProfMode::Sampled => "1",
            ProfMode::Leaks => "leaks",
        }
    }

    /// The extension of its files, as the allocator's default names have it.
    fn extension(self) -> &'static str {
        match self {
            ProfMode::Sampled => "heap",
            ProfMode::Leaks => "leaks",
        }
    }
}

#[derive(Debug, PartialEq)]
struct Options {
    profile: Option<ProfMode>,
    profile_dir: PathBuf,
    /// The program and its arguments; empty for the demo workload.
    program: Vec<OsString>,
}

/// Reads the options before the program's name; `Ok(None)` for `--help`.
fn parse_options(args: Vec<OsString>) -> Result<Option<Options>, String> {
    let mut opts = Options {
        profile: None,
        profile_dir: PathBuf::from("mapalloc-profile"),
        program: Vec::new(),
    };
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("-h" | "--help") => return Ok(None),
            Some("--profile") => {
                opts.profile.get_or_insert(ProfMode::Sampled);
            }
            Some("--leaks") => opts.profile = Some(ProfMode::Leaks),
            Some("--profile-dir") => {
                opts.profile_dir = args.next().ok_or("--profile-dir needs a directory")?.into();
                opts.profile.get_or_insert(ProfMode::Sampled);
            }
            Some("--") => {
                opts.program = args.collect();
                break;
            }
            Some(o) if o.starts_with('-') => {
                return Err(format!(
                    "unknown option `{o}` (mapalloc-run's options go before the program)"
                ));
            }
            _ => {
                opts.program = std::iter::once(a).chain(args).collect();
                break;
            }
        }
    }
    Ok(Some(opts))
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == DEMO_FLAG) {
        demo();
        return ExitCode::SUCCESS;
    }
    let opts = match parse_options(args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mapalloc-run: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mapalloc-run: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(opts: &Options) -> Result<ExitCode, String> {
    let lib = match std::env::var_os("MAPALLOC_LIB") {
        Some(l) => PathBuf::from(l),
        None => cargo_build("mapalloc-cdylib", "libmapalloc.so")?,
    };
    // Built before the program runs, so that a build failure does not cost a run.
    let tool = match (opts.profile, std::env::var_os("MAPALLOC_PROF_TOOL")) {
        (None, _) => None,
        (Some(_), Some(t)) => Some(PathBuf::from(t)),
        (Some(_), None) => Some(cargo_build("mapalloc-prof", "mapalloc-prof")?),
    };
    let (program, rest): (OsString, Vec<OsString>) = match opts.program.split_first() {
        Some((p, r)) => (p.clone(), r.to_vec()),
        None => (
            std::env::current_exe()
                .map_err(|e| format!("cannot find my own executable: {e}"))?
                .into_os_string(),
            vec![DEMO_FLAG.into()],
        ),
    };
    let mut preload = lib.into_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    let mut cmd = Command::new(&program);
    cmd.args(&rest).env("LD_PRELOAD", &preload);
    if std::env::var_os("MAPALLOC_STATS").is_none() {
        cmd.env("MAPALLOC_STATS", "1");
    }
    if let Some(mode) = opts.profile {
        prepare_profile_dir(&opts.profile_dir, mode)?;
        let mut pattern = opts.profile_dir.clone().into_os_string();
        pattern.push(format!("/mapalloc.%p.{}", mode.extension()));
        cmd.env("MAPALLOC_PROF", mode.env_value())
            .env("MAPALLOC_PROF_FILE", pattern);
    }
    let shown = program.to_string_lossy();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let pid = child.id();
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {shown}: {e}"))?;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => {
            eprintln!("mapalloc-run: {shown} killed by signal {sig}");
            ExitCode::from(128 + sig as u8)
        }
        _ => ExitCode::FAILURE,
    };
    match (opts.profile, tool) {
        (Some(mode), Some(tool)) => {
            let read = report_profile(&opts.profile_dir, mode, pid, &tool);
            match (read, status.success()) {
                (Ok(()), _) => Ok(code),
                (Err(e), true) => Err(e),
                // The program's own failure is the status to report.
                (Err(e), false) => {
                    eprintln!("mapalloc-run: {e}");
                    Ok(code)
                }
            }
        }
        _ => Ok(code),
    }
}

/// Profile files of this mode in `dir`, with the pid in each name.
fn profiles_in(dir: &Path, mode: ProfMode) -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let pid = name
                .strip_prefix("mapalloc.")?
                .strip_suffix(mode.extension())?
                .strip_suffix('.')?
                .parse()
                .ok()?;
            Some((pid, path))
        })
        .collect();
    out.sort();
    out
}

/// Creates the profile directory, or removes from it what an earlier run left: the profiles
/// of this mode and the files mapalloc-prof wrote next to them (nothing else is touched).
fn prepare_profile_dir(dir: &Path, mode: ProfMode) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (_, p) in profiles_in(dir, mode) {
        for ext in ["", ".collapsed", ".inuse.svg", ".alloc.svg"] {
            let mut q = p.clone().into_os_string();
            q.push(ext);
            match std::fs::remove_file(&q) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {}: {e}", q.to_string_lossy())),
            }
        }
    }
    Ok(())
}

/// Runs mapalloc-prof on the profile of process `pid` and lists the other processes' ones.
fn report_profile(dir: &Path, mode: ProfMode, pid: u32, tool: &Path) -> Result<(), String> {
    let all = profiles_in(dir, mode);
    let Some((_, top)) = all.iter().find(|(p, _)| *p == pid) else {
        return Err(format!(
            "process {pid} wrote no profile in {} (does this libmapalloc.so read MAPALLOC_PROF? \
             a program that exits through _exit or a signal skips the exit dump)",
            dir.display()
        ));
    };
    eprintln!("mapalloc-run: reading the profile of process {pid}");
    let st = Command::new(tool)
        .arg(top)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
    if !st.success() {
        return Err(format!("{} failed on {}", tool.display(), top.display()));
    }
    let others: Vec<_> = all.iter().filter(|(p, _)| *p != pid).collect();
    if !others.is_empty() {
        println!(
            "\nprofiles of {} other processes (child processes):",
            others.len()
        );
        for (_, p) in others {
            println!("  {}", p.display());
        }
        println!("read one with: {} PROFILE", tool.display());
    }
    Ok(())
}

/// Builds `package` in release mode and returns the path of its artifact whose path ends in
/// `/name`, from cargo's JSON messages.
fn cargo_build(package: &str, name: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--release", "-p", package, "--message-format=json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("building {package} failed"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let needle = format!("/{name}\"");
    let end = text
        .rfind(&needle)
        .ok_or_else(|| format!("cargo did not report {name}"))?
        + needle.len()
        - 1;
    let start = text[..end].rfind('"').ok_or("malformed cargo output")? + 1;
    Ok(PathBuf::from(&text[start..end]))
}

/// Which shared object serves `malloc` in this process.
fn malloc_provider() -> String {
    // SAFETY: Dl_info is plain data (pointers and integers); all-zero is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address and fills `info`.
    let ok = unsafe { libc::dladdr(libc::malloc as *const libc::c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return "unknown".into();
    }
    // SAFETY: dladdr gives a NUL-terminated path owned by the loader.
    unsafe { CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned()
}

/// The built-in workload: collections, strings and blocks passed between threads, with its
/// results checked. The process allocates through `malloc`, so it runs on the preloaded
/// library.
fn demo() {
    let start = Instant::now();
    println!("mapalloc demo: malloc is served by {}", malloc_provider());
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(1024);
    let mut workers = Vec::new();
    for t in 0..threads {
        let tx = tx.clone();
        workers.push(std::thread::spawn(move || {
            let mut seed = 0x9E37_79B9u64 ^ t as u64;
            let mut rand = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let mut words: HashMap<String, u64> = HashMap::new();
            let mut tree: BTreeMap<u64, String> = BTreeMap::new();
            for i in 0..200_000u64 {
                let w = format!("w{}", rand() % 50_000);
                *words.entry(w.clone()).or_default() += 1;
                if i % 4 == 0 {
                    tree.insert(rand() % 100_000, w);
                }
                if i % 8 == 0 {
                    let n = (rand() % 4096) as usize + 1;
                    let b = vec![(n % 251) as u8; n];
                    tx.send(b).expect("consumer alive");
                }
            }
            let total: u64 = words.values().sum();
            assert_eq!(total, 200_000);
            (words.len(), tree.len())
        }));
    }
    drop(tx);
    let consumer = std::thread::spawn(move || {
        let (mut blocks, mut bytes) = (0u64, 0u64);
        for b in rx {
            assert!(
                b.iter().all(|&x| x == (b.len() % 251) as u8),
                "block corrupted"
            );
            blocks += 1;
            bytes += b.len() as u64;
        }
        (blocks, bytes)
    });
    let mut distinct = 0;
    let mut keys = 0;
    for w in workers {
        let (d, k) = w.join().expect("worker");
        distinct += d;
        keys += k;
    }
    let (blocks, bytes) = consumer.join().expect("consumer");
    let mut v: Vec<u64> = Vec::new();
    for i in 0..2_000_000 {
        v.push(i);
    }
    let sum: u64 = v.iter().sum();
    assert_eq!(sum, 2_000_000 * 1_999_999 / 2);
    println!(
        "mapalloc demo: {threads} threads counted {distinct} distinct words and kept {keys} tree \
         keys; {blocks} blocks ({} KiB) crossed threads and were checked; a 2M-element Vec grew \
         by doubling; {:.0} ms",
        bytes / 1024,
        start.elapsed().as_secs_f64() * 1000.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Option<Options>, String> {
        parse_options(v.iter().map(OsString::from).collect())
    }

    #[test]
    fn options_come_before_the_program() {
        let o = parse(&["--profile", "python3", "--leaks", "-c", "1"])
            .unwrap()
            .unwrap();
        assert_eq!(o.profile, Some(ProfMode::Sampled));
        assert_eq!(o.program, ["python3", "--leaks", "-c", "1"]);
        let o = parse(&["--leaks", "--profile-dir", "d"]).unwrap().unwrap();
        assert_eq!(
            (o.profile, o.profile_dir, o.program.len()),
            (Some(ProfMode::Leaks), PathBuf::from("d"), 0)
        );
        let o = parse(&["--", "--weird-name"]).unwrap().unwrap();
        assert_eq!((o.profile, o.program.len()), (None, 1));
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(
            parse(&["--bogus", "ls"])
                .unwrap_err()
                .contains("unknown option")
        );
        assert!(parse(&["--profile-dir"]).unwrap_err().contains("needs"));
    }

    #[test]
    fn profile_names_give_pids() {
        let dir = std::env::temp_dir().join(format!("mapalloc-run-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in [
            "mapalloc.12.heap",
            "mapalloc.7.heap",
            "mapalloc.7.heap.collapsed",
            "x.heap",
        ] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let pids: Vec<u32> = profiles_in(&dir, ProfMode::Sampled)
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(pids, [7, 12]);
        prepare_profile_dir(&dir, ProfMode::Sampled).unwrap();
        assert!(profiles_in(&dir, ProfMode::Sampled).is_empty());
        assert!(dir.join("x.heap").exists());
        assert!(!dir.join("mapalloc.7.heap.collapsed").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
