// The throwing and nothrow C++ `operator new` variants of libmapalloc.so (the deletes are
// plain Rust in cdylib/src/cxx.rs). Exported under their Itanium names by the naked
// trampolines in cxx.rs, which jump here: no Rust frame is on the stack when these throw.
//
// The C++ runtime is not linked: every libstdc++ symbol used here is declared weak, so that a
// C program (which has no libstdc++ loaded) resolves them to null without needing
// libstdc++.so at run time. They are only reached when an allocation fails, and a C program
// never calls `operator new`.
#include <cstddef>
#include <new>

asm(".weak _ZSt15get_new_handlerv\n"
    ".weak _ZSt17__throw_bad_allocv\n"
    ".weak _ZTISt9bad_alloc\n"
    ".weak __gxx_personality_v0\n"
    ".weak __cxa_begin_catch\n"
    ".weak __cxa_end_catch\n"
    ".weak _Unwind_Resume\n"
    ".weak _ZSt9terminatev\n"
    ".weak __cxa_call_terminate\n");

namespace std {
[[noreturn]] void __throw_bad_alloc();
}

// Exported by cxx.rs: mapalloc's allocation, null on failure; `align` 0 is the default one.
extern "C" void* mapalloc_cxx_alloc(std::size_t size, std::size_t align) noexcept;

// [new.delete.single]: loop on the new-handler; without one, throw std::bad_alloc.
extern "C" void* mapalloc_cxx_new(std::size_t size, std::size_t align) {
    for (;;) {
        void* p = mapalloc_cxx_alloc(size, align);
        if (p != nullptr) {
            return p;
        }
        std::new_handler h = std::get_new_handler();
        if (h == nullptr) {
            std::__throw_bad_alloc();
        }
        h();
    }
}

// The nothrow forms: as the throwing form, but a std::bad_alloc (from the new-handler) is
// answered with null.
extern "C" void* mapalloc_cxx_new_nothrow(std::size_t size, std::size_t align) noexcept {
    for (;;) {
        void* p = mapalloc_cxx_alloc(size, align);
        if (p != nullptr) {
            return p;
        }
        std::new_handler h = std::get_new_handler();
        if (h == nullptr) {
            return nullptr;
        }
        try {
            h();
        } catch (const std::bad_alloc&) {
            return nullptr;
        }
    }
}
