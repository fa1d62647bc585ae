//! Compile cdylib/src/new.cc: the C++ `operator new` variants must throw `std::bad_alloc`,
//! which Rust cannot do (and nothing may unwind through a Rust frame). And link a private copy
//! of libgcc's unwinder (`libgcc_eh.a`, the archive `gcc -static-libgcc` uses), whose
//! `_Unwind_Backtrace` the heap profiler walks stacks with (`src/prof/unwind.rs`): the library
//! then needs no `libgcc_s.so.1` at load time, and rustc's export list keeps the copy's
//! symbols local, so the program's own unwinder (C++ exceptions) is not interposed.

fn main() {
    println!("cargo:rerun-if-changed=src/new.cc");
    cc::Build::new()
        .cpp(true)
        // No libstdc++ at link time: new.cc declares the runtime symbols it uses weak, so
        // C programs load the library without libstdc++ (see new.cc).
        .cpp_link_stdlib(None)
        .flag("-std=c++17")
        .flag("-fPIC")
        .warnings(true)
        .file("src/new.cc")
        .compile("mapalloc_new");
    link_unwinder();
}

/// Find `libgcc_eh.a` with the C compiler the `cc` crate chose for the target (so a cross
/// build finds the target's), and link it statically.
fn link_unwinder() {
    let cc = cc::Build::new().get_compiler();
    let out = std::process::Command::new(cc.path())
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .expect("run the C compiler to find libgcc_eh.a");
    let path = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let dir = path
        .parent()
        .filter(|_| path.is_absolute() && path.exists())
        .unwrap_or_else(|| panic!("libgcc_eh.a not found (gcc printed {path:?})"));
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static=gcc_eh");
}
