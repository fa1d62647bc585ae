//! mapalloc-prof on a real profile: `tests/c/leaks.c` compiled with gcc and run under
//! gperftools' heap profiler (`LD_PRELOAD=libtcmalloc.so.4 HEAPPROFILE=...`), which writes the
//! same text format that mapalloc does, at exit. The test checks that each of the three
//! leaking functions is given at least 90% of the bytes it leaked, that the function that
//! frees everything is given nothing in use (but its bytes in the allocated graph), and that
//! the flame graphs name the functions.
//!
//! Needs `gcc` and Debian's `libgoogle-perftools4` (`.ci/run` installs them); without them the
//! test says SKIPPED, or fails when `CI` is set.

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

#[test]
fn leaks_of_a_c_program_under_gperftools() {
    let Some(tcmalloc) = tcmalloc() else {
        return skip("libtcmalloc.so.4 not found (apt-get install libgoogle-perftools4)");
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gperftools-leaks");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("leaks");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/leaks.c");
    let cc = Command::new("gcc")
        .args(["-g", "-O1", "-fno-omit-frame-pointer", "-o"])
        .arg(&exe)
        .arg(&src)
        .status();
    match cc {
        Ok(s) => assert!(s.success(), "gcc failed on {}", src.display()),
        Err(_) => return skip("gcc not found"),
    }

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

    let out = dir.join("out");
    let tool = Command::new(env!("CARGO_BIN_EXE_mapalloc-prof"))
        .arg("--out")
        .arg(&out)
        .arg(&profile)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&tool.stdout);
    assert!(tool.status.success(), "{tool:?}");
    println!("{report}");

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
        let shown: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
        assert!(shown * 10 >= bytes * 9, "{line}");
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
