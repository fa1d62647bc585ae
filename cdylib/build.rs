//! Compile cdylib/src/new.cc: the C++ `operator new` variants must throw `std::bad_alloc`,
//! which Rust cannot do (and nothing may unwind through a Rust frame).

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
}
