//! Misuse guarantees of `libmapalloc.so`, one small C or C++ program each (`tests/c/misuse/`),
//! run as a child process under `LD_PRELOAD`. A program commits one misuse and must die:
//! `SIGABRT` after exactly one line `mapalloc: <what> <address>` on stderr, or `SIGSEGV` at
//! the expected address for a guard hit. The programs print the address the message must name
//! (`ptr=0x...`) or the fault must hit (`expect=0x...`, or `low=`/`high=` bounds) before the
//! misuse, and `survived` if the allocator let it pass.
//!
//! Every case can run with extra environment variables: `all_cases_with_immediate_purge`
//! runs them with `MAPALLOC_PURGE_DELAY_MS=0`, and `all_cases_strict` (ignored until strict
//! mode exists) with `MAPALLOC_STRICT=1`, which must keep every guarantee of the default mode.
//!
//! `MAPALLOC_TEST_PRELOAD_LIB` preloads another library instead of building `libmapalloc.so`.

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

use common::preload::{self, root, run, target_dir};

/// What a case must end with.
#[derive(Clone, Copy)]
enum Expect {
    /// `SIGABRT` and stderr exactly `<message> <ptr>`.
    Abort(&'static str),
    /// `SIGABRT` and stderr exactly `<message> <ptr><then>`.
    AbortThen(&'static str, &'static str),
    /// `SIGSEGV` at exactly the address the program printed as `expect=`.
    FaultAt,
    /// `SIGSEGV` at an address in `[low, high)` as printed by the program.
    FaultWithin,
}

use Expect::*;

const CASES: &[(&str, Expect)] = &[
    ("double_free_small", Abort("mapalloc: double free of")),
    ("double_free_small_later", Abort("mapalloc: double free of")),
    (
        "double_free_small_thread",
        Abort("mapalloc: double free of"),
    ),
    ("double_free_large", Abort("mapalloc: double free of")),
    ("double_free_large_later", Abort("mapalloc: double free of")),
    ("invalid_free_interior", Abort("mapalloc: invalid free of")),
    (
        "invalid_free_interior_large",
        Abort("mapalloc: invalid free of"),
    ),
    ("invalid_free_stack", Abort("mapalloc: invalid free of")),
    ("invalid_free_static", Abort("mapalloc: invalid free of")),
    (
        "invalid_free_foreign_mmap",
        Abort("mapalloc: invalid free of"),
    ),
    (
        "invalid_free_never_allocated",
        Abort("mapalloc: invalid free of"),
    ),
    (
        "realloc_freed_small",
        Abort("mapalloc: realloc of freed pointer"),
    ),
    (
        "realloc_freed_large",
        Abort("mapalloc: realloc of freed pointer"),
    ),
    (
        "realloc_invalid",
        Abort("mapalloc: realloc of invalid pointer"),
    ),
    (
        "usable_size_freed",
        Abort("mapalloc: malloc_usable_size of freed pointer"),
    ),
    (
        "usable_size_freed_large",
        Abort("mapalloc: malloc_usable_size of freed pointer"),
    ),
    (
        "usable_size_invalid",
        Abort("mapalloc: malloc_usable_size of invalid pointer"),
    ),
    (
        "sized_free_too_large",
        Abort("mapalloc: sized free with a size larger than the block at"),
    ),
    (
        "sized_delete_base_class",
        AbortThen("mapalloc: sized delete of", " with the wrong size"),
    ),
    (
        "sized_delete_array_as_scalar",
        AbortThen("mapalloc: sized delete of", " with the wrong size"),
    ),
    (
        "sized_delete_large",
        AbortThen("mapalloc: sized delete of", " with the wrong size"),
    ),
    (
        "aligned_delete_wrong_alignment",
        AbortThen(
            "mapalloc: aligned delete of",
            " with an alignment the block lacks",
        ),
    ),
    ("zero_size_write", FaultAt),
    ("zero_size_read_after_free", FaultAt),
    ("zero_size_double_free", Abort("mapalloc: double free of")),
    ("guard_large_overflow", FaultAt),
    ("guard_large_overflow_mlocked", FaultAt),
    ("guard_large_after_mremap", FaultAt),
    ("guard_large_reused", FaultAt),
    ("guard_large_underflow", FaultAt),
    ("guard_segment_overflow", FaultAt),
    ("guard_segment_underflow", FaultWithin),
    ("guard_segment_after_purge", FaultAt),
    ("underflow_first_small", FaultAt),
    ("underflow_first_page", FaultAt),
    ("underflow_first_big", FaultAt),
    ("uaf_big_read", FaultAt),
    ("uaf_big_write_thread", FaultAt),
    ("overflow_big_usable", FaultAt),
    ("overflow_big_after_realloc", FaultAt),
    ("overflow_big_reused", FaultAt),
    ("overflow_far_small_loop", FaultWithin),
    ("overflow_far_small_memset", FaultWithin),
    ("overflow_far_page_memcpy", FaultWithin),
    ("overflow_far_page_thread", FaultWithin),
    ("overflow_far_mlocked", FaultWithin),
    ("underflow_far_small", FaultWithin),
    ("underflow_far_page_thread", FaultWithin),
];

/// Compiles tests/c/misuse/<name>.c (or `.cpp`) into target/misuse-tests/<tag>/<name>.
fn compile(name: &str, tag: &str) -> PathBuf {
    let cxx = format!("misuse/{name}.cpp");
    let src = if root().join("tests/c").join(&cxx).is_file() {
        cxx
    } else {
        format!("misuse/{name}.c")
    };
    preload::compile_c(&src, &target_dir().join("misuse-tests").join(tag))
}

/// The value of the `key=` line the program printed on stdout.
fn printed(stdout: &str, key: &str, case: &str) -> usize {
    let v = stdout
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{case}: no {key}= line in stdout:\n{stdout}"));
    let hex = v.strip_prefix("0x").unwrap_or(v);
    usize::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("{case}: bad {key}={v}"))
}

/// Runs one case with `env` and asserts how it ended.
fn check_case(name: &str, expect: Expect, env: &[(&str, &str)], tag: &str) {
    // Strict mode: asked for by this run, or inherited (the whole suite runs in both modes).
    let strict = env.contains(&("MAPALLOC_STRICT", "1"))
        || (!env.iter().any(|(k, _)| *k == "MAPALLOC_STRICT")
            && std::env::var("MAPALLOC_STRICT").is_ok_and(|v| v == "1"));
    let bin = compile(name, tag);
    let out = run(&bin, env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ctx = format!(
        "{name} (env {env:?}): {:?}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    assert!(
        !stdout.lines().any(|l| l == "survived"),
        "misuse not detected: {ctx}"
    );
    match expect {
        Abort(message) => {
            assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{ctx}");
            let want = format!("{message} {:#x}", printed(&stdout, "ptr", name));
            assert_eq!(stderr.trim_end_matches('\n'), want, "{ctx}");
        }
        AbortThen(message, then) => {
            assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{ctx}");
            let want = format!("{message} {:#x}{then}", printed(&stdout, "ptr", name));
            assert_eq!(stderr.trim_end_matches('\n'), want, "{ctx}");
        }
        FaultAt
            if strict
                && out.status.signal() == Some(libc::SIGABRT)
                && stderr
                    .starts_with("mapalloc: heap overflow past the end of the block at 0x") =>
        {
            // Strict mode: the bytes right after the usable size are canary slack, so an
            // overflow into them is reported when the block is freed.
        }
        FaultAt if strict => {
            // Strict mode has denser guards (one per page run): a walk may fault before it
            // reaches the default-mode guard, never after it.
            assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{ctx}");
            let fault = printed(&stdout, "fault", name);
            let want = printed(&stdout, "expect", name);
            assert!(
                fault <= want && want - fault < 4 << 20,
                "fault at {fault:#x}, not at or before {want:#x}: {ctx}"
            );
        }
        FaultAt | FaultWithin => {
            assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{ctx}");
            assert!(
                stderr.is_empty(),
                "no message expected for a guard hit: {ctx}"
            );
            let fault = printed(&stdout, "fault", name);
            if let FaultAt = expect {
                let want = printed(&stdout, "expect", name);
                assert_eq!(fault, want, "fault at {fault:#x}, not {want:#x}: {ctx}");
            } else {
                let (lo, hi) = (
                    printed(&stdout, "low", name),
                    printed(&stdout, "high", name),
                );
                assert!(
                    (lo..hi).contains(&fault),
                    "fault at {fault:#x}, outside [{lo:#x}, {hi:#x}): {ctx}"
                );
            }
        }
    }
}

fn case(name: &str) {
    let expect = CASES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no case {name}"))
        .1;
    check_case(name, expect, &[], "default");
}

/// Runs every case with `env`, reporting all failures together.
fn all_cases(env: &[(&str, &str)], tag: &str, skip: &[&str]) {
    let failures: Vec<String> = CASES
        .iter()
        .filter(|(name, _)| !skip.contains(name))
        .filter_map(|&(name, expect)| {
            std::panic::catch_unwind(|| check_case(name, expect, env, tag))
                .err()
                .map(|e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_else(|| format!("{name}: failed"))
                })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every source in tests/c/misuse/ is a case of this file, and every case has its source.
#[test]
fn every_program_is_a_case() {
    let mut sources: Vec<String> = fs::read_dir(root().join("tests/c/misuse"))
        .expect("read tests/c/misuse")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let stem = name
                .strip_suffix(".c")
                .or_else(|| name.strip_suffix(".cpp"))?;
            Some(stem.to_owned())
        })
        .collect();
    sources.sort();
    let mut cases: Vec<String> = CASES.iter().map(|(n, _)| n.to_string()).collect();
    cases.sort();
    assert_eq!(sources, cases);
}

#[test]
fn all_cases_with_immediate_purge() {
    // With an immediate purge the large-block cache keeps only the block freed last, which
    // strict mode keeps out of reach: no block is ever reused from it, so the case of a
    // reused block has nothing to test (when the whole suite runs with MAPALLOC_STRICT=1).
    let strict = std::env::var("MAPALLOC_STRICT").is_ok_and(|v| v == "1");
    let skip: &[&str] = if strict { &["guard_large_reused"] } else { &[] };
    all_cases(&[("MAPALLOC_PURGE_DELAY_MS", "0")], "purge0", skip);
}

#[test]
fn all_cases_strict() {
    all_cases(&[("MAPALLOC_STRICT", "1")], "strict", &[]);
}

macro_rules! cases {
    ($($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                case(stringify!($name));
            }
        )*
    };
}

cases! {
    double_free_small
    double_free_small_later
    double_free_small_thread
    double_free_large
    double_free_large_later
    invalid_free_interior
    invalid_free_interior_large
    invalid_free_stack
    invalid_free_static
    invalid_free_foreign_mmap
    invalid_free_never_allocated
    realloc_freed_small
    realloc_freed_large
    realloc_invalid
    usable_size_freed
    usable_size_freed_large
    usable_size_invalid
    sized_free_too_large
    sized_delete_base_class
    sized_delete_array_as_scalar
    sized_delete_large
    aligned_delete_wrong_alignment
    zero_size_write
    zero_size_read_after_free
    zero_size_double_free
    guard_large_overflow
    guard_large_overflow_mlocked
    guard_large_after_mremap
    guard_large_reused
    guard_large_underflow
    guard_segment_overflow
    guard_segment_underflow
    guard_segment_after_purge
    underflow_first_small
    underflow_first_page
    underflow_first_big
    uaf_big_read
    uaf_big_write_thread
    overflow_big_usable
    overflow_big_after_realloc
    overflow_big_reused
    overflow_far_small_loop
    overflow_far_small_memset
    overflow_far_page_memcpy
    overflow_far_page_thread
    overflow_far_mlocked
    underflow_far_small
    underflow_far_page_thread
}
