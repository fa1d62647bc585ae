//! Heap profiles of a Rust program that uses mapalloc as its global allocator (issue 19):
//! the test binary runs itself as a child with `MAPALLOC_PROF=leaks`; three functions leak
//! known amounts, one frees everything, and the child writes its live heap with
//! `mapalloc::profile_dump` and again at exit. The profiles are read back with
//! `common::profile` (symbolised with `nm -C`).

mod common;

use common::profile::{attribute, parse};
use mapalloc::MapAlloc;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

const CHILD: &str = "MAPALLOC_PROF_RUST_CHILD";

#[inline(never)]
fn rust_leak_a() {
    for _ in 0..2000 {
        std::mem::forget(black_box(vec![1u8; 1500]));
    }
}

#[inline(never)]
fn rust_leak_b() {
    for _ in 0..50 {
        let b: &'static mut [u64] = Box::leak(black_box(vec![7u64; 5000]).into_boxed_slice());
        black_box(b);
    }
}

#[inline(never)]
fn rust_leak_c() {
    let mut v: Vec<Box<[u8; 200_000]>> = Vec::with_capacity(10);
    for _ in 0..10 {
        v.push(black_box(Box::new([3u8; 200_000])));
    }
    std::mem::forget(v);
}

#[inline(never)]
fn rust_no_leak() {
    let mut m = HashMap::new();
    for i in 0..20_000u64 {
        m.insert(i, vec![i as u8; (i % 300) as usize]);
    }
    black_box(&m);
}

/// The child's work (a test only in name: it does nothing unless the parent set `CHILD`).
#[test]
fn child() {
    let Some(dir) = std::env::var_os(CHILD) else {
        return;
    };
    rust_leak_a();
    rust_leak_b();
    rust_leak_c();
    rust_no_leak();
    let path = PathBuf::from(dir).join("asked.heap");
    mapalloc::profile_dump(path.to_str().unwrap()).expect("profile_dump");
}

#[test]
fn rust_face_profile_attributes_leaks() {
    let dir = common::preload::target_dir().join(format!("profile-rust-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--test-threads", "1"])
        .env(CHILD, &dir)
        .env("MAPALLOC_PROF", "leaks")
        .env("MAPALLOC_PROF_FILE", dir.join("exit.%p.leaks"))
        .output()
        .expect("run the child");
    assert!(
        out.status.success(),
        "child: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let targets = ["rust_leak_a", "rust_leak_b", "rust_leak_c", "rust_no_leak"];
    let want = [
        ("rust_leak_a", 3e6),
        ("rust_leak_b", 2e6),
        ("rust_leak_c", 2e6),
    ];
    let asked = parse(&std::fs::read_to_string(dir.join("asked.heap")).expect("asked.heap"));
    let a = attribute(&asked, &targets);
    for (who, bytes) in want {
        let got = a.get(who).map_or(0.0, |e| e.0);
        // rust_leak_c's vector of pointers leaks too (80 bytes).
        assert!(
            got >= bytes && got <= bytes + 1000.0,
            "{who}: {got} live, {bytes} leaked: {a:?}"
        );
    }
    let no = a.get("rust_no_leak").copied().unwrap_or_default();
    assert_eq!(no.0, 0.0, "rust_no_leak's map was dropped: {a:?}");
    assert!(no.1 > 1e6, "rust_no_leak allocated: {a:?}");
    // The profile at exit is written too, named with the child's pid.
    let exit: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("exit."))
        .collect();
    assert_eq!(exit.len(), 1, "one profile at exit");
    let at_exit = parse(&std::fs::read_to_string(exit[0].path()).unwrap());
    let b = attribute(&at_exit, &targets);
    assert!(b.get("rust_leak_a").is_some_and(|e| e.0 >= 3e6), "{b:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
