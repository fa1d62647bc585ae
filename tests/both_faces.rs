//! A Rust program that uses `MapAlloc` as its global allocator *and* runs with
//! `libmapalloc.so` preloaded: two independent allocators in one process (each with its own
//! hidden TLS slot and state), both working.

use std::process::Command;

#[global_allocator]
static GLOBAL: mapalloc::MapAlloc = mapalloc::MapAlloc;

const CHILD: &str = "MAPALLOC_BOTH_FACES_CHILD";

fn build_cdylib() -> std::path::PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let st = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "mapalloc-cdylib"])
        .current_dir(root)
        .status()
        .expect("run cargo");
    assert!(st.success(), "building the cdylib failed");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{root}/target"));
    let lib = std::path::PathBuf::from(target).join("release/libmapalloc.so");
    assert!(lib.exists(), "{} missing", lib.display());
    lib
}

fn malloc_provider() -> String {
    // SAFETY: Dl_info is plain data; all-zero is valid, and dladdr fills it.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address.
    let ok = unsafe { libc::dladdr(libc::malloc as *const libc::c_void, &mut info) };
    assert!(ok != 0 && !info.dli_fname.is_null());
    // SAFETY: a NUL-terminated path owned by the loader.
    unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned()
}

fn workload() -> u64 {
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut v: Vec<String> = Vec::new();
                let mut sum = 0u64;
                for i in 0..20_000u64 {
                    v.push(format!("{t}:{i}"));
                    // Through the preloaded C allocator as well.
                    // SAFETY: plain malloc/free pairs of the C allocator.
                    unsafe {
                        let p = libc::malloc((i % 300 + 1) as usize) as *mut u8;
                        assert!(!p.is_null());
                        p.write(i as u8);
                        sum += u64::from(p.read());
                        libc::free(p.cast());
                    }
                }
                sum + v.iter().map(|s| s.len() as u64).sum::<u64>()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

#[test]
fn both_faces_in_one_process() {
    if std::env::var_os(CHILD).is_some() {
        let provider = malloc_provider();
        assert!(
            provider.contains("libmapalloc.so"),
            "malloc served by {provider}"
        );
        let a = workload();
        let b = workload();
        assert_eq!(a, b);
        println!("both-faces-ok {a}");
        return;
    }
    let lib = build_cdylib();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "both_faces_in_one_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("LD_PRELOAD", &lib)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stdout}\n{stderr}");
    assert!(
        stdout.contains("both-faces-ok"),
        "child output: {stdout}\n{stderr}"
    );
}
