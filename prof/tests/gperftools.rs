//! mapalloc-prof on a real profile: `tests/c/leaks.c` compiled with gcc and run under
//! gperftools' heap profiler (`LD_PRELOAD=libtcmalloc.so.4 HEAPPROFILE=...`), which writes the
//! same text format that mapalloc does, at exit. The test checks that each of the three
//! leaking functions is given at least 90% of the bytes it leaked, that the function that
//! frees everything is given nothing in use (but its bytes in the allocated graph), and that
//! the flame graphs name the functions.
//!
//! A second test takes a *sampled* profile (`heap_v2/524288`) from tcmalloc's
//! `GetHeapSample` (`tests/c/sampled.cc`) and checks the estimates: equal to google-pprof's
//! on the same file, and near the bytes really leaked.
//!
//! Needs `gcc`, `g++` and Debian's `libgoogle-perftools-dev` and `google-perftools`
//! (`.ci/run` installs them); without them the tests say SKIPPED, or fail when `CI` is set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (function, bytes it leaks), as in leaks.c.
const LEAKS: &[(&str, u64)] = &[
    ("leak_small_blocks", 100 * 10_000),
    ("leak_medium_blocks", 10 * 300_000),
    ("leak_one_big_block", 5_000_000),
];
const FREES_ALL: &str = "free_everything";

fn skip(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{reason} (CI is set, so this is a failure, not a skip)");
    }
    eprintln!("SKIPPED: {reason}");
}

fn tcmalloc() -> Option<PathBuf> {
    ["x86_64-linux-gnu", "aarch64-linux-gnu", ""]
        .iter()
        .map(|d| Path::new("/usr/lib").join(d).join("libtcmalloc.so.4"))
        .find(|p| p.is_file())
}

/// Sums the folded lines by their innermost frame.
fn by_leaf(collapsed: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for line in collapsed.lines() {
        let (stack, v) = line.rsplit_once(' ').expect("folded line has a value");
        let leaf = stack.rsplit(';').next().unwrap_or(stack);
        *out.entry(leaf.to_string()).or_insert(0) += v.parse::<u64>().expect("value");
    }
    out
}

/// Compiles `tests/c/<src>` into `dir` with debug info and frame pointers; None when the
/// compiler is missing (skipped).
fn compile(compiler: &str, src: &str, dir: &Path, libs: &[&str]) -> Option<PathBuf> {
    let exe = dir.join(src.split('.').next().unwrap_or(src));
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(src);
    let st = Command::new(compiler)
        .args(["-g", "-O1", "-fno-omit-frame-pointer", "-o"])
        .arg(&exe)
        .arg(&src)
        .args(libs)
        .status();
    match st {
        Ok(s) => assert!(s.success(), "{compiler} failed on {}", src.display()),
        Err(_) => {
            skip(&format!("{compiler} not found"));
            return None;
        }
    }
    Some(exe)
}

/// A fresh directory under Cargo's temporary directory for tests.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs mapalloc-prof on `profile` with outputs at `dir/out.*`; returns its report.
fn mapalloc_prof(profile: &Path, dir: &Path) -> String {
    let tool = Command::new(env!("CARGO_BIN_EXE_mapalloc-prof"))
        .arg("--out")
        .arg(dir.join("out"))
        .arg(profile)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&tool.stdout).into_owned();
    assert!(tool.status.success(), "{tool:?}");
    println!("{report}");
    report
}

/// The report's first number on the line of the call site `f`: its estimated bytes.
fn site_bytes(report: &str, f: &str) -> u64 {
    let line = report
        .lines()
        .find(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|w| w.starts_with(f))
        })
        .unwrap_or_else(|| panic!("{f} is no call site in the report\n{report}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn leaks_of_a_c_program_under_gperftools() {
    let Some(tcmalloc) = tcmalloc() else {
        return skip("libtcmalloc.so.4 not found (apt-get install libgoogle-perftools4)");
    };
    let dir = fresh_dir("gperftools-leaks");
    let Some(exe) = compile("gcc", "leaks.c", &dir, &[]) else {
        return;
    };

    let run = Command::new(&exe)
        .env("LD_PRELOAD", &tcmalloc)
        .env("HEAPPROFILE", dir.join("hp"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    // gperftools numbers its dumps; the one written at exit is the last.
    let mut dumps: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "heap"))
        .collect();
    dumps.sort();
    let profile = dumps
        .last()
        .expect("gperftools wrote no .heap file")
        .clone();

    let report = mapalloc_prof(&profile, &dir);

    let collapsed = std::fs::read_to_string(dir.join("out.collapsed")).unwrap();
    let leaves = by_leaf(&collapsed);
    for &(f, bytes) in LEAKS {
        let got = leaves.get(f).copied().unwrap_or(0);
        assert!(
            got * 10 >= bytes * 9,
            "{f}: {got} of {bytes} leaked bytes\n{collapsed}"
        );
        // The report's line for the site: bytes first, the function with its source line.
        let line = report
            .lines()
            .find(|l| l.contains(&format!(" {f} (")))
            .unwrap_or_else(|| panic!("{f} not in the report\n{report}"));
        assert!(line.contains("leaks.c:"), "{line}");
        assert!(site_bytes(&report, f) * 10 >= bytes * 9, "{line}");
    }
    assert!(!collapsed.contains(FREES_ALL), "{collapsed}");
    assert!(!report.contains(FREES_ALL), "{report}");

    for svg in ["out.inuse.svg", "out.alloc.svg"] {
        let text = std::fs::read_to_string(dir.join(svg)).unwrap();
        assert!(text.starts_with("<?xml"), "{svg}");
        for &(f, _) in LEAKS {
            assert!(text.contains(f), "{svg} lacks {f}");
        }
        assert!(text.contains("bytes"), "{svg}");
    }
    // Its 1280 blocks of 20000 bytes were all freed: they count in the allocated bytes only.
    let alloc = std::fs::read_to_string(dir.join("out.alloc.svg")).unwrap();
    assert!(
        alloc.contains(FREES_ALL),
        "the alloc graph lacks {FREES_ALL}"
    );
    let inuse = std::fs::read_to_string(dir.join("out.inuse.svg")).unwrap();
    assert!(
        !inuse.contains(FREES_ALL),
        "the in-use graph has {FREES_ALL}"
    );
}

#[test]
fn sampled_profile_estimates_match_pprof() {
    const PERIOD: u64 = 524_288;
    const SMALL: u64 = 100_000 * 1000;
    const BIG: u64 = 8 << 22;
    let dir = fresh_dir("gperftools-sampled");
    let Some(exe) = compile("g++", "sampled.cc", &dir, &["-ltcmalloc_and_profiler"]) else {
        return;
    };
    let profile = dir.join("sampled.heap");
    let run = Command::new(&exe)
        .arg(&profile)
        .env("TCMALLOC_SAMPLE_PARAMETER", PERIOD.to_string())
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(
        text.starts_with("heap profile:")
            && text.lines().next().unwrap().ends_with("@ heap_v2/524288"),
        "{}",
        text.lines().next().unwrap_or("")
    );
    let raw_samples = text.lines().filter(|l| l.contains("] @ 0x")).count();

    let report = mapalloc_prof(&profile, &dir);
    assert!(report.contains("sampled every 524288 bytes"), "{report}");
    // ~190 samples of 1000 bytes: raw, they are 0.2% of the bytes; scaled, near all of them
    // (the band is about four standard deviations of the sampling either side).
    let small = site_bytes(&report, "leak_many_small_blocks");
    assert!(
        (SMALL * 6 / 10..=SMALL * 14 / 10).contains(&small),
        "leak_many_small_blocks: {small} estimated of {SMALL} ({raw_samples} samples)"
    );
    // 4 MiB blocks are sampled with probability 1 - e^-8 and scaled by about 1.
    let big = site_bytes(&report, "leak_big_blocks");
    assert!(
        (BIG * 9 / 10..=BIG * 11 / 10).contains(&big),
        "leak_big_blocks: {big} of {BIG}"
    );
    assert!(!report.contains("free_everything"), "{report}");

    // google-pprof scales the same file the same way: compare the estimated block counts.
    let pprof = Command::new("google-pprof")
        .args(["--text", "--inuse_objects"])
        .arg(&exe)
        .arg(&profile)
        .output();
    let Ok(pprof) = pprof else {
        return skip("google-pprof not found (apt-get install google-perftools)");
    };
    let pprof = String::from_utf8_lossy(&pprof.stdout);
    let theirs: f64 = pprof
        .lines()
        .find_map(|l| {
            l.strip_prefix("Total: ")?
                .strip_suffix(" objects")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no total in google-pprof's output\n{pprof}"));
    let ours: f64 = report
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("in use at the dump:")?;
            rest.split(" in ")
                .nth(1)?
                .strip_suffix(" blocks")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no in-use total in the report\n{report}"));
    assert!(
        (ours - theirs).abs() <= 1.0,
        "blocks: ours {ours}, google-pprof's {theirs}"
    );
}
