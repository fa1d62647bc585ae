/*
 * api.c - every exported allocation function and its edge cases.
 *
 * Usage: api [--host-libc]
 *
 * Without options every check is strict (the semantics mapalloc promises).
 * --host-libc relaxes the few checks that are deliberately stricter than
 * glibc 2.36 so that this program can be validated against the host libc:
 *   - free_sized, free_aligned_sized and __posix_memalign may be missing.
 *
 * All allocator functions are called through volatile function pointers
 * obtained with dlsym(RTLD_DEFAULT, ...), so that the compiler cannot fold
 * or elide calls it believes it understands (malloc(0) != malloc(0), errno
 * after free, huge constant sizes), and so that each function can first be
 * checked to come from the same shared object as malloc: mixing two
 * allocators would corrupt memory instead of failing a check.
 *
 * Every failed check prints "FAIL api.c:LINE: ..." to stderr; the program
 * exits 1 if any check failed and prints "ok" on stdout otherwise.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures;
static int host_libc;
static size_t page_size;

static void fail_at(int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints the first few failures of each check (source line) in full. */
static void fail_at(int line, const char *expr, const char *fmt, ...)
{
    static unsigned short per_line[4096];
    va_list ap;
    failures++;
    unsigned n = line >= 0 && line < 4096 ? per_line[line]++ : 0;
    if (n < 3) {
        fprintf(stderr, "FAIL api.c:%d: (%s) ", line, expr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    } else if (n == 3) {
        fprintf(stderr, "FAIL api.c:%d: more failures of this check not shown\n", line);
    }
    if (failures >= 100000) {
        fprintf(stderr, "FAIL api.c: too many failures, stopping\n");
        exit(1);
    }
}

/* CHECK: record the failure and go on. REQUIRE: stop at once (the rest of
 * the program would dereference a bad pointer). */
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond))                                                           \
            fail_at(__LINE__, #cond, __VA_ARGS__);                             \
    } while (0)
#define REQUIRE(cond, ...)                                                     \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fail_at(__LINE__, #cond, __VA_ARGS__);                             \
            fprintf(stderr, "FAIL api.c: fatal, stopping\n");                  \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* ---- resolved functions ------------------------------------------------ */

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void *(*reallocarray_fn)(void *, size_t, size_t);
typedef int (*posix_memalign_fn)(void **, size_t, size_t);
typedef void *(*aligned_fn)(size_t, size_t);
typedef size_t (*usable_fn)(void *);
typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);
typedef int (*trim_fn)(size_t);
typedef struct mallinfo (*mallinfo_fn)(void);
typedef struct mallinfo2 (*mallinfo2_fn)(void);
typedef void (*stats_fn)(void);

static malloc_fn volatile f_malloc, f_valloc, f_pvalloc, f_libc_malloc;
static free_fn volatile f_free, f_libc_free;
static calloc_fn volatile f_calloc, f_libc_calloc;
static realloc_fn volatile f_realloc, f_libc_realloc;
static reallocarray_fn volatile f_reallocarray;
static posix_memalign_fn volatile f_posix_memalign, f_posix_memalign2;
static aligned_fn volatile f_aligned_alloc, f_memalign, f_libc_memalign;
static usable_fn volatile f_usable;
static free_sized_fn volatile f_free_sized;
static free_aligned_sized_fn volatile f_free_aligned_sized;
static trim_fn volatile f_trim;
static mallinfo_fn volatile f_mallinfo;
static mallinfo2_fn volatile f_mallinfo2;
static stats_fn volatile f_stats;

static char malloc_object[4096];

/* Look a symbol up and check that it lives in the same object as malloc.
 * Returns NULL (after reporting) if it is missing or comes from elsewhere. */
static void *resolve(const char *name, int may_be_missing_on_host)
{
    void *sym = dlsym(RTLD_DEFAULT, name);
    Dl_info info;
    if (sym == NULL) {
        if (host_libc && may_be_missing_on_host) {
            printf("note: %s not provided by the host libc, not tested\n", name);
            return NULL;
        }
        CHECK(sym != NULL, "symbol %s is not exported by anything loaded", name);
        return NULL;
    }
    if (dladdr(sym, &info) == 0 || info.dli_fname == NULL) {
        CHECK(0, "dladdr failed for %s", name);
        return NULL;
    }
    if (malloc_object[0] == 0) {
        snprintf(malloc_object, sizeof malloc_object, "%s", info.dli_fname);
        return sym;
    }
    if (strcmp(malloc_object, info.dli_fname) != 0) {
        CHECK(0,
              "%s comes from %s but malloc from %s; mixing allocators, "
              "tests of %s skipped",
              name, info.dli_fname, malloc_object, name);
        return NULL;
    }
    return sym;
}

#define RESOLVE(var, name, opt) var = (__typeof__(var))resolve(name, opt)

static void resolve_all(void)
{
    RESOLVE(f_malloc, "malloc", 0);
    REQUIRE(f_malloc != NULL, "malloc not found");
    RESOLVE(f_free, "free", 0);
    RESOLVE(f_calloc, "calloc", 0);
    RESOLVE(f_realloc, "realloc", 0);
    RESOLVE(f_usable, "malloc_usable_size", 0);
    REQUIRE(f_free && f_calloc && f_realloc && f_usable,
            "the core functions must come from one object");
    RESOLVE(f_reallocarray, "reallocarray", 0);
    RESOLVE(f_posix_memalign, "posix_memalign", 0);
    RESOLVE(f_aligned_alloc, "aligned_alloc", 0);
    RESOLVE(f_memalign, "memalign", 0);
    RESOLVE(f_valloc, "valloc", 0);
    RESOLVE(f_pvalloc, "pvalloc", 0);
    RESOLVE(f_free_sized, "free_sized", 1);
    RESOLVE(f_free_aligned_sized, "free_aligned_sized", 1);
    RESOLVE(f_trim, "malloc_trim", 0);
    RESOLVE(f_mallinfo, "mallinfo", 0);
    RESOLVE(f_mallinfo2, "mallinfo2", 0);
    RESOLVE(f_stats, "malloc_stats", 0);
    RESOLVE(f_libc_malloc, "__libc_malloc", 0);
    RESOLVE(f_libc_free, "__libc_free", 0);
    RESOLVE(f_libc_calloc, "__libc_calloc", 0);
    RESOLVE(f_libc_realloc, "__libc_realloc", 0);
    RESOLVE(f_libc_memalign, "__libc_memalign", 0);
    RESOLVE(f_posix_memalign2, "__posix_memalign", 1);
}

/* ---- helpers ----------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static unsigned char pat(size_t i, unsigned seed)
{
    return (unsigned char)((i * 131u) ^ (i >> 8) ^ (seed * 29u + 7u));
}

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = pat(i, seed);
}

/* Returns the index of the first wrong byte, or n. */
static size_t verify(const void *p, size_t n, unsigned seed)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != pat(i, seed))
            return i;
    return n;
}

/* The common checks on a fresh block: non-NULL, 16-byte aligned (or more),
 * honest usable size, every reported byte writable. */
static void check_block(const char *what, void *p, size_t n, size_t align, int line)
{
    if (p == NULL) {
        fail_at(line, "p != NULL", "%s(%zu): NULL (errno %d)", what, n, errno);
        return;
    }
    if (align < 16)
        align = 16;
    if (!aligned(p, align))
        fail_at(line, "aligned", "%s(%zu) = %p not %zu-aligned", what, n, p, align);
    size_t u = f_usable(p);
    if (u < n)
        fail_at(line, "usable >= n", "%s(%zu): malloc_usable_size = %zu", what, n, u);
    else
        memset(p, 0x5A, u); /* every reported byte must be writable */
}

static const size_t HUGE_SIZES[] = {
    SIZE_MAX,
    SIZE_MAX - 1,
    SIZE_MAX - 15,
    SIZE_MAX - 4095,
    SIZE_MAX - (1u << 20),
    SIZE_MAX / 2,
    (size_t)PTRDIFF_MAX,
    (size_t)PTRDIFF_MAX + 1,
    (size_t)PTRDIFF_MAX - 4095,
    (size_t)1 << 62,
};
#define NHUGE (sizeof HUGE_SIZES / sizeof HUGE_SIZES[0])

/* ---- sections ---------------------------------------------------------- */

static void test_malloc_sizes(void)
{
    for (size_t n = 0; n <= 4100; n++) {
        void *p = f_malloc(n);
        check_block("malloc", p, n, 16, __LINE__);
        f_free(p);
    }
    for (size_t b = 12; b <= 26; b++) {
        for (int d = -17; d <= 17; d += 17) {
            size_t n = ((size_t)1 << b) + (size_t)(ptrdiff_t)d;
            void *p = f_malloc(n);
            check_block("malloc", p, n, 16, __LINE__);
            f_free(p);
        }
    }
}

static void test_malloc_zero(void)
{
    enum { N = 1000 };
    static void *ps[N];
    for (int i = 0; i < N; i++) {
        ps[i] = f_malloc(0);
        REQUIRE(ps[i] != NULL, "malloc(0) returned NULL (errno %d)", errno);
        CHECK(aligned(ps[i], 16), "malloc(0) = %p not 16-aligned", ps[i]);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (ps[i] == ps[j]) {
                CHECK(ps[i] != ps[j], "malloc(0) returned %p twice", ps[i]);
                j = N;
                i = N;
            }
    for (int i = 0; i < N; i++)
        f_free(ps[i]);
}

/* Many blocks live at once, each filled over its whole usable size: a
 * usable size that overlaps a neighbour, or two overlapping blocks, show up
 * as a corrupted pattern. */
static void test_live_set(void)
{
    enum { N = 6000 };
    static void *ps[N];
    static size_t us[N];
    for (int i = 0; i < N; i++) {
        uint64_t r = rnd();
        size_t n;
        switch (r % 8) {
        case 0: n = r % 17; break;
        case 1: case 2: case 3: n = (r >> 8) % 512; break;
        case 4: case 5: n = (r >> 8) % 8192; break;
        case 6: n = (r >> 8) % 70000; break;
        default: n = (r >> 8) % 600000; break;
        }
        ps[i] = f_malloc(n);
        REQUIRE(ps[i] != NULL, "malloc(%zu) returned NULL (errno %d)", n, errno);
        CHECK(aligned(ps[i], 16), "malloc(%zu) = %p not 16-aligned", n, ps[i]);
        us[i] = f_usable(ps[i]);
        CHECK(us[i] >= n, "malloc(%zu): usable size %zu", n, us[i]);
        fill(ps[i], us[i], (unsigned)i);
        /* free some at random to churn */
        if (i > 10 && r % 5 == 0) {
            int k = (int)((r >> 32) % (uint64_t)i);
            if (ps[k] != NULL) {
                size_t bad = verify(ps[k], us[k], (unsigned)k);
                CHECK(bad == us[k], "block %d corrupted at byte %zu of %zu", k, bad, us[k]);
                f_free(ps[k]);
                ps[k] = NULL;
            }
        }
    }
    for (int i = 0; i < N; i++) {
        if (ps[i] == NULL)
            continue;
        size_t bad = verify(ps[i], us[i], (unsigned)i);
        CHECK(bad == us[i], "block %d (%p, usable %zu) corrupted at byte %zu", i, ps[i], us[i], bad);
    }
    for (int i = N - 1; i >= 0; i--)
        f_free(ps[i]);
}

static void test_huge_malloc(void)
{
    for (size_t i = 0; i < NHUGE; i++) {
        size_t n = HUGE_SIZES[i];
        errno = 0;
        void *p = f_malloc(n);
        CHECK(p == NULL, "malloc(%zu) = %p", n, p);
        CHECK(errno == ENOMEM, "malloc(%zu): errno %d, want ENOMEM", n, errno);
        if (p)
            f_free(p);
    }
    /* the allocator still works afterwards */
    void *p = f_malloc(100);
    check_block("malloc after failures", p, 100, 16, __LINE__);
    f_free(p);
}

static void test_free_and_errno(void)
{
    static const size_t sizes[] = {0, 1, 100, 5000, 70000, 1 << 20, 40 << 20};
    errno = EDOM;
    f_free(NULL);
    CHECK(errno == EDOM, "free(NULL) changed errno to %d", errno);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = f_malloc(sizes[i]);
        REQUIRE(p != NULL, "malloc(%zu) failed", sizes[i]);
        memset(p, 1, sizes[i]);
        errno = EDOM;
        f_free(p);
        CHECK(errno == EDOM, "free of a %zu-byte block changed errno to %d", sizes[i], errno);
    }
    if (f_memalign) {
        void *p = f_memalign(1 << 16, 300000);
        REQUIRE(p != NULL, "memalign(64 KiB, 300000) failed");
        errno = ERANGE;
        f_free(p);
        CHECK(errno == ERANGE, "free of a memalign block changed errno to %d", errno);
    }
    if (f_free_sized) {
        void *p = f_malloc(3000);
        REQUIRE(p != NULL, "malloc failed");
        errno = EDOM;
        f_free_sized(p, 3000);
        CHECK(errno == EDOM, "free_sized changed errno to %d", errno);
        errno = EDOM;
        f_free_sized(NULL, 0);
        CHECK(errno == EDOM, "free_sized(NULL, 0) changed errno to %d", errno);
    }
    if (f_free_aligned_sized) {
        errno = EDOM;
        f_free_aligned_sized(NULL, 64, 0);
        CHECK(errno == EDOM, "free_aligned_sized(NULL) changed errno to %d", errno);
    }
}

static void test_calloc(void)
{
    static const size_t sizes[] = {1, 15, 16, 17, 100, 1000, 4096, 5000, 65536, 100000, 1 << 20, 8 << 20, 40 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        /* dirty some blocks of this size first so that reuse is likely */
        void *d[8];
        int nd = n >= (1 << 20) ? 2 : 8;
        for (int k = 0; k < nd; k++) {
            d[k] = f_malloc(n);
            REQUIRE(d[k] != NULL, "malloc(%zu) failed", n);
            memset(d[k], 0xFF, f_usable(d[k]));
        }
        for (int k = 0; k < nd; k++)
            f_free(d[k]);
        for (int form = 0; form < 3; form++) {
            void *p = form == 0 ? f_calloc(1, n) : form == 1 ? f_calloc(n, 1) : n % 4 == 0 ? f_calloc(n / 4, 4) : f_calloc(n, 1);
            REQUIRE(p != NULL, "calloc for %zu bytes failed (errno %d)", n, errno);
            const unsigned char *c = p;
            size_t nz = n;
            for (size_t j = 0; j < n; j++)
                if (c[j] != 0) {
                    nz = j;
                    break;
                }
            CHECK(nz == n, "calloc(%zu bytes) not zeroed at byte %zu", n, nz);
            check_block("calloc", p, n, 16, __LINE__);
            f_free(p);
        }
    }
    /* zero elements: a unique freeable pointer, like malloc(0) */
    void *a = f_calloc(0, 10), *b = f_calloc(10, 0), *c = f_calloc(0, 0);
    CHECK(a != NULL && b != NULL && c != NULL, "calloc with a zero count: %p %p %p", a, b, c);
    CHECK(a != b && b != c && (a != c || a == NULL), "calloc(0) results not unique: %p %p %p", a, b, c);
    f_free(a);
    f_free(b);
    f_free(c);

    static const size_t ovf[][2] = {
        {SIZE_MAX, 2},
        {2, SIZE_MAX},
        {(size_t)1 << 32, (size_t)1 << 32},     /* 2^64 wraps to 0 */
        {(size_t)1 << 33, ((size_t)1 << 31) + 1}, /* wraps to 2^33 */
        {SIZE_MAX / 2 + 1, 2},                   /* wraps to 0 */
        {SIZE_MAX / 16 + 1, 16},                 /* wraps to 0 */
        {(size_t)PTRDIFF_MAX, 1},
        {1, SIZE_MAX},
        {SIZE_MAX, SIZE_MAX},
        {(size_t)1 << 31, (size_t)1 << 31},      /* 2^62: fits, impossible */
    };
    for (size_t i = 0; i < sizeof ovf / sizeof ovf[0]; i++) {
        errno = 0;
        void *p = f_calloc(ovf[i][0], ovf[i][1]);
        CHECK(p == NULL, "calloc(%zu, %zu) = %p", ovf[i][0], ovf[i][1], p);
        CHECK(errno == ENOMEM, "calloc(%zu, %zu): errno %d, want ENOMEM", ovf[i][0], ovf[i][1], errno);
        if (p)
            f_free(p);
    }
}

static void test_realloc(void)
{
    /* realloc(NULL, n) is malloc(n) */
    static const size_t sizes[] = {0, 1, 24, 1000, 100000, 3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = f_realloc(NULL, sizes[i]);
        CHECK(p != NULL, "realloc(NULL, %zu) = NULL (errno %d)", sizes[i], errno);
        if (p) {
            check_block("realloc(NULL)", p, sizes[i], 16, __LINE__);
            f_free(p);
        }
    }

    /* realloc(p, 0) frees p and returns NULL (glibc behaviour) */
    static const size_t zsizes[] = {1, 100, 5000, 300000};
    for (size_t i = 0; i < sizeof zsizes / sizeof zsizes[0]; i++) {
        void *p = f_malloc(zsizes[i]);
        REQUIRE(p != NULL, "malloc failed");
        void *q = f_realloc(p, 0);
        CHECK(q == NULL, "realloc(%zu-byte block, 0) = %p, want NULL", zsizes[i], q);
        if (q)
            f_free(q);
    }

    /* growth then shrink from 1 byte to ~48 MiB and back; two blocks in
     * step, with a third allocation in between to prevent always-in-place */
    size_t n = 1;
    void *a = f_malloc(n), *b = f_malloc(n);
    REQUIRE(a && b, "malloc(1) failed");
    fill(a, n, 1);
    fill(b, n, 2);
    size_t steps[160];
    int ns = 0;
    for (size_t s = 1; s < (48u << 20); s = s * 3 / 2 + 1 + (rnd() % 8))
        steps[ns++] = s;
    for (int i = ns - 1; i >= 0; i--)
        steps[ns + (ns - 1 - i)] = steps[i] / 2 + 1;
    int total = 2 * ns;
    for (int i = 0; i < total; i++) {
        size_t m = steps[i];
        size_t keep = n < m ? n : m;
        void *spacer = f_malloc(m / 3 + 1);
        REQUIRE(spacer != NULL, "malloc(%zu) failed", m / 3 + 1);
        void *a2 = f_realloc(a, m);
        REQUIRE(a2 != NULL, "realloc(%zu -> %zu) failed (errno %d)", n, m, errno);
        void *b2 = f_realloc(b, m);
        REQUIRE(b2 != NULL, "realloc(%zu -> %zu) failed (errno %d)", n, m, errno);
        a = a2;
        b = b2;
        CHECK(aligned(a, 16) && aligned(b, 16), "realloc result not 16-aligned: %p %p", a, b);
        CHECK(f_usable(a) >= m, "realloc(%zu): usable %zu", m, f_usable(a));
        size_t bad = verify(a, keep, 1);
        CHECK(bad == keep, "realloc %zu -> %zu lost contents at byte %zu", n, m, bad);
        bad = verify(b, keep, 2);
        CHECK(bad == keep, "realloc %zu -> %zu lost contents at byte %zu", n, m, bad);
        fill(a, m, 1);
        fill(b, m, 2);
        memset(spacer, 0x33, m / 3 + 1);
        f_free(spacer);
        n = m;
    }
    f_free(a);
    f_free(b);

    /* same size, tiny steps inside one size class */
    void *p = f_malloc(40);
    REQUIRE(p != NULL, "malloc failed");
    fill(p, 40, 9);
    for (size_t m = 40; m < 200; m++) {
        p = f_realloc(p, m);
        REQUIRE(p != NULL, "realloc failed");
        size_t bad = verify(p, 40, 9);
        CHECK(bad == 40, "realloc(%zu) lost contents at %zu", m, bad);
    }
    f_free(p);

    /* a failed realloc leaves the old block intact */
    static const size_t olds[] = {10, 5000, 200000, 20 << 20};
    for (size_t i = 0; i < sizeof olds / sizeof olds[0]; i++) {
        void *o = f_malloc(olds[i]);
        REQUIRE(o != NULL, "malloc failed");
        fill(o, olds[i], 77);
        for (size_t h = 0; h < NHUGE; h++) {
            errno = 0;
            void *q = f_realloc(o, HUGE_SIZES[h]);
            CHECK(q == NULL, "realloc(%zu-byte block, %zu) = %p", olds[i], HUGE_SIZES[h], q);
            CHECK(errno == ENOMEM, "realloc(%zu) errno %d, want ENOMEM", HUGE_SIZES[h], errno);
            if (q) {
                o = q; /* should not happen; keep going safely */
                fill(o, olds[i], 77);
            }
        }
        size_t bad = verify(o, olds[i], 77);
        CHECK(bad == olds[i], "old %zu-byte block changed by a failed realloc at byte %zu", olds[i], bad);
        /* still a valid block: it can grow and be freed */
        void *q = f_realloc(o, olds[i] * 2);
        REQUIRE(q != NULL, "realloc after failed realloc failed");
        bad = verify(q, olds[i], 77);
        CHECK(bad == olds[i], "contents lost after failed+good realloc at %zu", bad);
        f_free(q);
    }

    /* realloc of an over-aligned block keeps contents */
    if (f_memalign) {
        void *m = f_memalign(4096, 3000);
        REQUIRE(m != NULL, "memalign failed");
        fill(m, 3000, 5);
        void *q = f_realloc(m, 100000);
        REQUIRE(q != NULL, "realloc of memalign block failed");
        CHECK(aligned(q, 16), "realloc result %p not 16-aligned", q);
        CHECK(verify(q, 3000, 5) == 3000, "realloc of memalign block lost contents");
        q = f_realloc(q, 100);
        REQUIRE(q != NULL, "shrinking realloc failed");
        CHECK(verify(q, 100, 5) == 100, "shrinking realloc lost contents");
        f_free(q);
    }
}

static void test_reallocarray(void)
{
    if (!f_reallocarray)
        return;
    void *p = f_reallocarray(NULL, 10, 10);
    check_block("reallocarray(NULL)", p, 100, 16, __LINE__);
    fill(p, 100, 3);
    p = f_reallocarray(p, 1000, 8);
    REQUIRE(p != NULL, "reallocarray(p, 1000, 8) failed");
    CHECK(verify(p, 100, 3) == 100, "reallocarray lost contents");
    fill(p, 8000, 4);
    static const size_t ovf[][2] = {
        {SIZE_MAX, 2},
        {(size_t)1 << 32, (size_t)1 << 32},
        {SIZE_MAX / 2 + 1, 2},
        {SIZE_MAX / 3 + 1, 3},
        {(size_t)1 << 40, (size_t)1 << 30},
        {(size_t)1 << 31, (size_t)1 << 31},
    };
    for (size_t i = 0; i < sizeof ovf / sizeof ovf[0]; i++) {
        errno = 0;
        void *q = f_reallocarray(p, ovf[i][0], ovf[i][1]);
        CHECK(q == NULL, "reallocarray(p, %zu, %zu) = %p", ovf[i][0], ovf[i][1], q);
        CHECK(errno == ENOMEM, "reallocarray(p, %zu, %zu): errno %d", ovf[i][0], ovf[i][1], errno);
        if (q)
            p = q;
    }
    CHECK(verify(p, 8000, 4) == 8000, "failed reallocarray damaged the old block");
    errno = 0;
    void *q = f_reallocarray(NULL, SIZE_MAX, 16);
    CHECK(q == NULL && errno == ENOMEM, "reallocarray(NULL, SIZE_MAX, 16) = %p errno %d", q, errno);
    f_free(p);
}

static void test_posix_memalign(posix_memalign_fn fn, const char *name)
{
    if (!fn)
        return;
    void *sentinel = (void *)(uintptr_t)0xDEADBEE0;
    /* valid alignments: power of two multiple of sizeof(void *) */
    for (size_t a = sizeof(void *); a <= ((size_t)32 << 20); a *= 2) {
        size_t sizes[] = {1, 7, a - 1, a, a + 1, a < (1u << 20) ? 3 * a / 2 : 2, 100};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = sentinel;
            int rc = fn(&p, a, sizes[i]);
            CHECK(rc == 0, "%s(align %zu, size %zu) = %d", name, a, sizes[i], rc);
            if (rc != 0)
                continue;
            check_block(name, p, sizes[i], a, __LINE__);
            f_free(p);
        }
    }
    void *p = sentinel;
    int rc = fn(&p, 16, 0);
    CHECK(rc == 0, "%s(16, 0) = %d", name, rc);
    if (rc == 0)
        f_free(p);

    static const size_t bad_align[] = {0, 1, 2, 4, 3, 12, 24, 48, 100, 4097, ((size_t)1 << 20) + 8,
                                       SIZE_MAX, SIZE_MAX / 2 + 2, (size_t)PTRDIFF_MAX};
    for (size_t i = 0; i < sizeof bad_align / sizeof bad_align[0]; i++) {
        p = sentinel;
        rc = fn(&p, bad_align[i], 64);
        CHECK(rc == EINVAL, "%s(align %zu): returned %d, want EINVAL", name, bad_align[i], rc);
        CHECK(p == sentinel, "%s(align %zu) wrote *memptr = %p on failure", name, bad_align[i], p);
        if (rc == 0)
            f_free(p);
    }
    static const size_t nomem[][2] = {
        {16, SIZE_MAX},
        {64, SIZE_MAX - 64},
        {4096, SIZE_MAX - 4096},
        {(size_t)1 << 20, (size_t)PTRDIFF_MAX},
        {16, (size_t)1 << 62},
        {(size_t)1 << 62, 1},
        {SIZE_MAX / 2 + 1, 1},
        {(size_t)1 << 21, SIZE_MAX - ((size_t)1 << 20)},
    };
    for (size_t i = 0; i < sizeof nomem / sizeof nomem[0]; i++) {
        p = sentinel;
        rc = fn(&p, nomem[i][0], nomem[i][1]);
        CHECK(rc == ENOMEM, "%s(align %zu, size %zu): returned %d, want ENOMEM", name, nomem[i][0], nomem[i][1], rc);
        CHECK(p == sentinel, "%s(align %zu, size %zu) wrote *memptr = %p on failure", name, nomem[i][0], nomem[i][1], p);
        if (rc == 0)
            f_free(p);
    }
}

static void test_aligned_fn(aligned_fn fn, const char *name)
{
    if (!fn)
        return;
    for (size_t a = 1; a <= ((size_t)32 << 20); a *= 2) {
        size_t sizes[] = {1, a > 1 ? a - 1 : 1, a, a + 1, a < (1u << 20) ? 3 * a / 2 : 2, 100};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            errno = 0;
            void *p = fn(a, sizes[i]);
            check_block(name, p, sizes[i], a, __LINE__);
            f_free(p);
        }
    }
    /* several live over-aligned blocks do not overlap */
    enum { N = 64 };
    void *ps[N];
    size_t ns[N];
    for (int i = 0; i < N; i++) {
        size_t a = (size_t)1 << (4 + rnd() % 18); /* 16 B .. 2 MiB */
        ns[i] = 1 + rnd() % (a * 2);
        if (ns[i] > (4u << 20))
            ns[i] = 4u << 20;
        ps[i] = fn(a, ns[i]);
        REQUIRE(ps[i] != NULL, "%s(%zu, %zu) failed", name, a, ns[i]);
        CHECK(aligned(ps[i], a), "%s(%zu, %zu) = %p misaligned", name, a, ns[i], ps[i]);
        fill(ps[i], ns[i], (unsigned)i + 100);
    }
    for (int i = 0; i < N; i++) {
        CHECK(verify(ps[i], ns[i], (unsigned)i + 100) == ns[i], "%s block %d corrupted", name, i);
        f_free(ps[i]);
    }

    /* glibc 2.36's rules (mapalloc follows them): an alignment of 16 or less,
     * 0 included, is malloc's; one that is not a power of two is rounded up to
     * the next; only one above SIZE_MAX / 2 + 1 is EINVAL. */
    static const size_t odd[] = {0, 1, 3, 8, 12, 24, 48, 100, 4097, 12288, ((size_t)1 << 20) + 16};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        size_t want = 16;
        while (want < odd[i])
            want *= 2;
        for (size_t n = 0; n <= 4096; n += 4096) {
            errno = 0;
            void *p = fn(odd[i], n);
            REQUIRE(p != NULL, "%s(%zu, %zu) failed (errno %d)", name, odd[i], n, errno);
            CHECK(aligned(p, want), "%s(%zu, %zu) = %p, want %zu-aligned", name, odd[i], n, p, want);
            fill(p, n, 7);
            CHECK(verify(p, n, 7) == n, "%s(%zu, %zu) block corrupted", name, odd[i], n);
            f_free(p);
        }
    }
    static const size_t bad[] = {((size_t)1 << 63) + 1, SIZE_MAX - 4095, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = fn(bad[i], 64);
        CHECK(p == NULL, "%s(%zu, 64) = %p, want NULL", name, bad[i], p);
        CHECK(errno == EINVAL, "%s(%zu, 64): errno %d, want EINVAL", name, bad[i], errno);
        if (p)
            f_free(p);
    }
    static const size_t nomem[][2] = {
        {16, SIZE_MAX},
        {64, SIZE_MAX - 64},
        {4096, SIZE_MAX - 100},
        {(size_t)1 << 20, (size_t)PTRDIFF_MAX},
        {(size_t)1 << 62, 1},
        {SIZE_MAX / 2 + 1, 1},
    };
    for (size_t i = 0; i < sizeof nomem / sizeof nomem[0]; i++) {
        errno = 0;
        void *p = fn(nomem[i][0], nomem[i][1]);
        CHECK(p == NULL, "%s(%zu, %zu) = %p", name, nomem[i][0], nomem[i][1], p);
        CHECK(errno == ENOMEM, "%s(%zu, %zu): errno %d, want ENOMEM", name, nomem[i][0], nomem[i][1], errno);
        if (p)
            f_free(p);
    }
}

static void test_valloc_pvalloc(void)
{
    size_t pg = page_size;
    size_t sizes[] = {1, 16, pg - 1, pg, pg + 1, 10 * pg + 3, 1 << 20, (1 << 20) + 1};
    if (f_valloc) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = f_valloc(sizes[i]);
            check_block("valloc", p, sizes[i], pg, __LINE__);
            f_free(p);
        }
        void *p = f_valloc(0);
        if (p) {
            CHECK(aligned(p, pg), "valloc(0) = %p not page-aligned", p);
            f_free(p);
        }
        errno = 0;
        p = f_valloc(SIZE_MAX);
        CHECK(p == NULL && errno == ENOMEM, "valloc(SIZE_MAX) = %p errno %d", p, errno);
        errno = 0;
        p = f_valloc(SIZE_MAX - pg / 2);
        CHECK(p == NULL && errno == ENOMEM, "valloc(SIZE_MAX - pg/2) = %p errno %d", p, errno);
    }
    if (f_pvalloc) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t rounded = (sizes[i] + pg - 1) / pg * pg;
            void *p = f_pvalloc(sizes[i]);
            /* pvalloc rounds the size up to a page: all of it is usable */
            check_block("pvalloc", p, rounded, pg, __LINE__);
            f_free(p);
        }
        void *p = f_pvalloc(0);
        /* one page; glibc 2.36 gives a 1-byte block (rounding bug) */
        check_block("pvalloc", p, host_libc ? 1 : pg, pg, __LINE__);
        f_free(p);
        static const size_t nomem[] = {SIZE_MAX, SIZE_MAX - 1, 0, (size_t)PTRDIFF_MAX};
        for (size_t i = 0; i < sizeof nomem / sizeof nomem[0]; i++) {
            /* SIZE_MAX - pg + 2 overflows when rounded up to a page */
            size_t n = nomem[i] ? nomem[i] : SIZE_MAX - pg + 2;
            errno = 0;
            p = f_pvalloc(n);
            CHECK(p == NULL, "pvalloc(%zu) = %p", n, p);
            CHECK(errno == ENOMEM, "pvalloc(%zu): errno %d, want ENOMEM", n, errno);
        }
    }
}

static void test_usable_size(void)
{
    CHECK(f_usable(NULL) == 0, "malloc_usable_size(NULL) = %zu", f_usable(NULL));
    /* honest after realloc shrink and for calloc */
    void *p = f_malloc(100000);
    REQUIRE(p != NULL, "malloc failed");
    p = f_realloc(p, 50);
    REQUIRE(p != NULL, "realloc shrink failed");
    check_block("realloc shrink", p, 50, 16, __LINE__);
    f_free(p);
}

static void test_free_sized(void)
{
    if (f_free_sized) {
        for (size_t n = 0; n <= 5000; n += (n < 300 ? 1 : 97)) {
            void *p = f_malloc(n);
            REQUIRE(p != NULL, "malloc(%zu) failed", n);
            memset(p, 7, n);
            f_free_sized(p, n);
        }
        static const size_t big[] = {70000, 1 << 20, 9 << 20};
        for (size_t i = 0; i < 3; i++) {
            void *p = f_malloc(big[i]);
            REQUIRE(p != NULL, "malloc failed");
            f_free_sized(p, big[i]);
            p = f_calloc(big[i] / 8, 8);
            REQUIRE(p != NULL, "calloc failed");
            f_free_sized(p, big[i] / 8 * 8);
        }
        /* shrinking keeps the block valid for free_sized(p, new_size) */
        static const size_t shr[][2] = {{1000, 100}, {100000, 40}, {5 << 20, 3000}, {64, 1000}, {3000, 5 << 20}};
        for (size_t i = 0; i < sizeof shr / sizeof shr[0]; i++) {
            void *p = f_malloc(shr[i][0]);
            REQUIRE(p != NULL, "malloc failed");
            p = f_realloc(p, shr[i][1]);
            REQUIRE(p != NULL, "realloc failed");
            memset(p, 1, shr[i][1]);
            f_free_sized(p, shr[i][1]);
        }
        /* still healthy */
        void *p = f_malloc(123);
        check_block("malloc after free_sized", p, 123, 16, __LINE__);
        f_free(p);
    }
    if (f_free_aligned_sized && f_aligned_alloc) {
        for (size_t a = 16; a <= (1 << 22); a *= 4) {
            size_t sizes[] = {a, 3 * a, a / 2 + 1};
            for (size_t i = 0; i < 3; i++) {
                void *p = f_aligned_alloc(a, sizes[i]);
                REQUIRE(p != NULL, "aligned_alloc(%zu, %zu) failed", a, sizes[i]);
                memset(p, 2, sizes[i]);
                f_free_aligned_sized(p, a, sizes[i]);
            }
        }
        void *p = f_malloc(77);
        check_block("malloc after free_aligned_sized", p, 77, 16, __LINE__);
        f_free(p);
    }
}

static void test_libc_aliases(void)
{
    if (f_libc_malloc && f_libc_free) {
        void *p = f_libc_malloc(100);
        check_block("__libc_malloc", p, 100, 16, __LINE__);
        f_libc_free(p);
        p = f_libc_malloc(0);
        CHECK(p != NULL, "__libc_malloc(0) = NULL");
        f_free(p); /* same allocator: mixing with free is fine */
        errno = EDOM;
        f_libc_free(NULL);
        CHECK(errno == EDOM, "__libc_free(NULL) changed errno");
        errno = 0;
        p = f_libc_malloc(SIZE_MAX);
        CHECK(p == NULL && errno == ENOMEM, "__libc_malloc(SIZE_MAX) = %p errno %d", p, errno);
    }
    if (f_libc_calloc) {
        void *p = f_libc_calloc(100, 3);
        REQUIRE(p != NULL, "__libc_calloc failed");
        size_t nz = 0;
        for (size_t i = 0; i < 300; i++)
            nz += ((unsigned char *)p)[i] != 0;
        CHECK(nz == 0, "__libc_calloc memory not zeroed");
        f_free(p);
        errno = 0;
        p = f_libc_calloc((size_t)1 << 32, (size_t)1 << 32);
        CHECK(p == NULL && errno == ENOMEM, "__libc_calloc overflow = %p errno %d", p, errno);
    }
    if (f_libc_realloc) {
        void *p = f_libc_realloc(NULL, 50);
        REQUIRE(p != NULL, "__libc_realloc(NULL, 50) failed");
        fill(p, 50, 8);
        p = f_libc_realloc(p, 70000);
        REQUIRE(p != NULL, "__libc_realloc grow failed");
        CHECK(verify(p, 50, 8) == 50, "__libc_realloc lost contents");
        f_free(p);
    }
    if (f_libc_memalign) {
        void *p = f_libc_memalign(256, 1000);
        check_block("__libc_memalign", p, 1000, 256, __LINE__);
        f_free(p);
    }
}

static void test_info_trim_stats(void)
{
    /* some state to report on */
    void *keep[64];
    for (int i = 0; i < 64; i++) {
        keep[i] = f_malloc((size_t)(i + 1) * 1000);
        REQUIRE(keep[i] != NULL, "malloc failed");
    }
    if (f_mallinfo2) {
        struct mallinfo2 mi = f_mallinfo2();
        printf("mallinfo2: arena=%zu uordblks=%zu hblkhd=%zu\n", mi.arena, mi.uordblks, mi.hblkhd);
    }
    if (f_mallinfo) {
        struct mallinfo mi = f_mallinfo();
        printf("mallinfo: arena=%d uordblks=%d\n", mi.arena, mi.uordblks);
    }
    for (int i = 0; i < 64; i += 2)
        f_free(keep[i]);
    if (f_trim) {
        int r = f_trim(0);
        CHECK(r == 0 || r == 1, "malloc_trim(0) = %d", r);
        r = f_trim(1 << 20);
        CHECK(r == 0 || r == 1, "malloc_trim(1 MiB) = %d", r);
    }
    for (int i = 1; i < 64; i += 2) {
        memset(keep[i], 3, (size_t)(i + 1) * 1000); /* still usable after trim */
        f_free(keep[i]);
    }
    if (f_stats) {
        char path[] = "/tmp/mapalloc-api-stats-XXXXXX";
        int fd = mkstemp(path);
        REQUIRE(fd >= 0, "mkstemp failed");
        unlink(path);
        fflush(stderr);
        int saved = dup(2);
        REQUIRE(saved >= 0 && dup2(fd, 2) == 2, "dup2 failed");
        f_stats();
        fflush(stderr);
        REQUIRE(dup2(saved, 2) == 2, "dup2 back failed");
        close(saved);
        struct stat st;
        REQUIRE(fstat(fd, &st) == 0, "fstat failed");
        CHECK(st.st_size > 0, "malloc_stats() printed nothing to stderr");
        close(fd);
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* API_VERBOSE=1 prints the time each section takes. */
#define SECTION(call)                                                          \
    do {                                                                       \
        double t0_ = now();                                                    \
        call;                                                                  \
        if (verbose)                                                           \
            fprintf(stderr, "%-50s %.3fs\n", #call, now() - t0_);             \
    } while (0)

int main(int argc, char **argv)
{
    int verbose = getenv("API_VERBOSE") != NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host-libc") == 0)
            host_libc = 1;
        else {
            fprintf(stderr, "usage: %s [--host-libc]\n", argv[0]);
            return 2;
        }
    }
    long pg = sysconf(_SC_PAGESIZE);
    REQUIRE(pg > 0, "sysconf(_SC_PAGESIZE) failed");
    page_size = (size_t)pg;

    resolve_all();
    printf("allocator: %s\n", malloc_object);
    SECTION(test_malloc_sizes());
    SECTION(test_malloc_zero());
    SECTION(test_live_set());
    SECTION(test_huge_malloc());
    SECTION(test_free_and_errno());
    SECTION(test_calloc());
    SECTION(test_realloc());
    SECTION(test_reallocarray());
    SECTION(test_posix_memalign(f_posix_memalign, "posix_memalign"));
    SECTION(test_posix_memalign(f_posix_memalign2, "__posix_memalign"));
    SECTION(test_aligned_fn(f_aligned_alloc, "aligned_alloc"));
    SECTION(test_aligned_fn(f_memalign, "memalign"));
    SECTION(test_valloc_pvalloc());
    SECTION(test_usable_size());
    SECTION(test_free_sized());
    SECTION(test_libc_aliases());
    SECTION(test_info_trim_stats());

    if (failures) {
        fprintf(stderr, "api: %d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
