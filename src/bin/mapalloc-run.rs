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

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, OsString};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Instant;

const DEMO_FLAG: &str = "--mapalloc-demo-workload";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == DEMO_FLAG) {
        demo();
        return ExitCode::SUCCESS;
    }
    if args.first().is_some_and(|a| a == "--help" || a == "-h") {
        eprintln!("usage: mapalloc-run [PROGRAM [ARGS...]]  (no program: the demo workload)");
        return ExitCode::SUCCESS;
    }
    let lib = match std::env::var_os("MAPALLOC_LIB") {
        Some(l) => PathBuf::from(l),
        None => match build_library() {
            Ok(l) => l,
            Err(e) => {
                eprintln!("mapalloc-run: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let (program, rest): (OsString, Vec<OsString>) = match args.split_first() {
        Some((p, r)) => (p.clone(), r.to_vec()),
        None => (
            std::env::current_exe().expect("own path").into_os_string(),
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
    match cmd.status() {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(c), _) => ExitCode::from(c as u8),
            (None, Some(sig)) => {
                eprintln!(
                    "mapalloc-run: {} killed by signal {sig}",
                    program.to_string_lossy()
                );
                ExitCode::from(128 + sig as u8)
            }
            _ => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!(
                "mapalloc-run: cannot run {}: {e}",
                program.to_string_lossy()
            );
            ExitCode::from(127)
        }
    }
}

/// Build the cdylib in release mode and return the path of `libmapalloc.so`.
fn build_library() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "mapalloc-cdylib",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err("building libmapalloc.so failed".into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // Find the artifact path ending in libmapalloc.so in cargo's JSON messages.
    let end = text
        .rfind("libmapalloc.so\"")
        .ok_or("cargo did not report libmapalloc.so")?
        + "libmapalloc.so".len();
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
