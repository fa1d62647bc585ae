//! No path of the allocator can panic: a panic would run the panic hook, which may allocate
//! (re-entering the allocator, possibly while it holds a lock) and formats its message. This
//! test disassembles the release `libmapalloc.so` and fails if any function of mapalloc's
//! core or any exported allocation function calls a panic routine (bounds checks, division by
//! zero, unwrap/expect). Internal invariant failures use `os::internal`, a fixed-message
//! abort, instead.

use std::process::Command;

fn build_cdylib() -> std::path::PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let st = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "mapalloc-cdylib"])
        .current_dir(root)
        .status()
        .expect("run cargo");
    assert!(st.success(), "building the cdylib failed");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{root}/target"));
    std::path::PathBuf::from(target).join("release/libmapalloc.so")
}

const EXPORTED: &[&str] = &[
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
    "free_sized",
    "free_aligned_sized",
    "malloc_trim",
    "mallinfo",
    "mallinfo2",
    "malloc_stats",
];

fn is_allocator_function(name: &str) -> bool {
    // `<name>:` or `<path::to::fn>:` as objdump -C prints it.
    let n = name.trim_start_matches('<').trim_end_matches(">:");
    n.starts_with("mapalloc::")
        || n.starts_with("mapalloc_")
        || n.starts_with("__libc_")
        || n.starts_with("__posix_memalign")
        || EXPORTED.contains(&n)
}

#[test]
fn allocator_functions_never_call_panic_routines() {
    let lib = build_cdylib();
    let out = Command::new("objdump")
        .args(["-d", "-C", "--no-show-raw-insn"])
        .arg(&lib)
        .output()
        .expect("objdump (binutils) is needed");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut current = String::new();
    let mut functions = 0;
    let mut offenders = Vec::new();
    for line in text.lines() {
        if line.ends_with(">:") {
            if let Some(i) = line.find('<') {
                current = line[i..].to_string();
                if is_allocator_function(&current) {
                    functions += 1;
                }
            }
            continue;
        }
        let calls_panic = line.contains("call")
            && [
                "panic",
                "unwrap_failed",
                "expect_failed",
                "slice_index_fail",
            ]
            .iter()
            .any(|p| line.contains(p));
        if calls_panic && is_allocator_function(&current) {
            offenders.push(format!("{current} {}", line.trim()));
        }
    }
    assert!(
        functions > 20,
        "found only {functions} allocator functions: wrong parse?"
    );
    assert!(
        offenders.is_empty(),
        "allocator functions that can panic:\n{}",
        offenders.join("\n")
    );
}
