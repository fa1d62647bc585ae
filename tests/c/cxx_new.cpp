// Every replaceable C++ allocation function under the preload: each operator new variant
// returns a usable block of the preloaded allocator (checked with
// mapalloc_malloc_usable_size when mapalloc is the one preloaded: it aborts for a foreign
// block), honours the alignment, and each delete variant frees it; a failing new calls the
// new-handler in a loop and throws std::bad_alloc without one; the nothrow forms return null,
// also when the new-handler throws.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <initializer_list>
#include <new>

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            std::fprintf(stderr, "cxx_new: check failed line %d: %s\n",      \
                         __LINE__, #c);                                       \
            std::exit(1);                                                     \
        }                                                                     \
    } while (0)

static size_t (*usable)(void*);

static void use(void* p, size_t size, size_t align) {
    CHECK(p != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p) % align == 0);
    std::memset(p, 0xa5, size);
    if (usable != nullptr) {
        CHECK(usable(p) >= size);
    }
}

static int handler_calls;
static void handler_then_give_up() {
    if (++handler_calls == 3) {
        std::set_new_handler(nullptr);
    }
}
static void handler_throws() {
    ++handler_calls;
    throw std::bad_alloc();
}

int main() {
    usable = reinterpret_cast<size_t (*)(void*)>(dlsym(RTLD_DEFAULT, "mapalloc_malloc_usable_size"));
    const std::nothrow_t& nt = std::nothrow;
    for (size_t size : {size_t(0), size_t(1), size_t(24), size_t(1000), size_t(70000), size_t(3) << 20}) {
        void* p = ::operator new(size);
        use(p, size, 16);
        ::operator delete(p);
        p = ::operator new[](size);
        use(p, size, 16);
        ::operator delete[](p);
        p = ::operator new(size);
        use(p, size, 16);
        ::operator delete(p, size);
        p = ::operator new[](size);
        use(p, size, 16);
        ::operator delete[](p, size);
        p = ::operator new(size, nt);
        use(p, size, 16);
        ::operator delete(p, nt);
        p = ::operator new[](size, nt);
        use(p, size, 16);
        ::operator delete[](p, nt);
        for (size_t a : {size_t(32), size_t(64), size_t(4096), size_t(1) << 16}) {
            std::align_val_t al{a};
            p = ::operator new(size, al);
            use(p, size, a);
            ::operator delete(p, al);
            p = ::operator new[](size, al);
            use(p, size, a);
            ::operator delete[](p, al);
            p = ::operator new(size, al);
            use(p, size, a);
            ::operator delete(p, size, al);
            p = ::operator new[](size, al);
            use(p, size, a);
            ::operator delete[](p, size, al);
            p = ::operator new(size, al, nt);
            use(p, size, a);
            ::operator delete(p, al, nt);
            p = ::operator new[](size, al, nt);
            use(p, size, a);
            ::operator delete[](p, al, nt);
        }
    }
    // new-expressions of an over-aligned type use the aligned forms.
    struct alignas(256) Big { char c[300]; };
    Big* b = new Big[3];
    use(b, sizeof(Big) * 3, 256);
    delete[] b;
    b = new Big;
    use(b, sizeof(Big), 256);
    delete b;

    const size_t huge = SIZE_MAX / 4;
    // No new-handler: bad_alloc for each throwing form, null for each nothrow form.
    std::set_new_handler(nullptr);
    int thrown = 0;
    try { (void)::operator new(huge); } catch (const std::bad_alloc&) { thrown++; }
    try { (void)::operator new[](huge); } catch (const std::bad_alloc&) { thrown++; }
    try { (void)::operator new(huge, std::align_val_t{64}); } catch (const std::bad_alloc&) { thrown++; }
    try { (void)::operator new[](huge, std::align_val_t{64}); } catch (const std::bad_alloc&) { thrown++; }
    CHECK(thrown == 4);
    CHECK(::operator new(huge, nt) == nullptr);
    CHECK(::operator new[](huge, nt) == nullptr);
    CHECK(::operator new(huge, std::align_val_t{64}, nt) == nullptr);
    CHECK(::operator new[](huge, std::align_val_t{64}, nt) == nullptr);

    // A new-handler is called until it removes itself, then bad_alloc (or null).
    handler_calls = 0;
    std::set_new_handler(handler_then_give_up);
    thrown = 0;
    try { (void)::operator new(huge); } catch (const std::bad_alloc&) { thrown++; }
    CHECK(thrown == 1 && handler_calls == 3);
    handler_calls = 0;
    std::set_new_handler(handler_then_give_up);
    CHECK(::operator new(huge, std::align_val_t{4096}, nt) == nullptr);
    CHECK(handler_calls == 3);
    // A new-handler that throws: the throwing forms pass bad_alloc on, nothrow gives null.
    handler_calls = 0;
    std::set_new_handler(handler_throws);
    thrown = 0;
    try { (void)::operator new[](huge, std::align_val_t{128}); } catch (const std::bad_alloc&) { thrown++; }
    CHECK(thrown == 1 && handler_calls == 1);
    CHECK(::operator new[](huge, nt) == nullptr);
    CHECK(handler_calls == 2);
    std::set_new_handler(nullptr);
    std::printf("%s\nok\n", usable != nullptr ? "mapalloc blocks checked" : "another allocator");
    return 0;
}
