/*
 * header_static.c - the prefixed C API from include/mapalloc.h, linked
 * statically (target/release/libmapalloc.a -lpthread -ldl -lm), run
 * without LD_PRELOAD.
 *
 * Memory from mapalloc_* functions is only ever given back to mapalloc_*
 * functions; the program's ordinary malloc (whatever it resolves to) is
 * used alongside, never mixed. Calls go through volatile function pointers
 * so that allocation attributes in the header cannot let the compiler fold
 * the checks away (or warn about deliberately huge constant sizes).
 */
#define _GNU_SOURCE
#include "mapalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void *(*volatile m_malloc)(size_t) = mapalloc_malloc;
static void (*volatile m_free)(void *) = mapalloc_free;
static void *(*volatile m_calloc)(size_t, size_t) = mapalloc_calloc;
static void *(*volatile m_realloc)(void *, size_t) = mapalloc_realloc;
static void *(*volatile m_reallocarray)(void *, size_t, size_t) = mapalloc_reallocarray;
static int (*volatile m_posix_memalign)(void **, size_t, size_t) = mapalloc_posix_memalign;
static void *(*volatile m_aligned_alloc)(size_t, size_t) = mapalloc_aligned_alloc;
static void *(*volatile m_memalign)(size_t, size_t) = mapalloc_memalign;
static void *(*volatile m_valloc)(size_t) = mapalloc_valloc;
static void *(*volatile m_pvalloc)(size_t) = mapalloc_pvalloc;
static size_t (*volatile m_usable)(void *) = mapalloc_malloc_usable_size;
static void (*volatile m_free_sized)(void *, size_t) = mapalloc_free_sized;
static void (*volatile m_free_aligned_sized)(void *, size_t, size_t) = mapalloc_free_aligned_sized;
static int (*volatile m_trim)(size_t) = mapalloc_malloc_trim;
static void (*volatile m_stats_print)(void) = mapalloc_stats_print;

static int failures;

static void fail_at(int line, const char *expr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_at(int line, const char *expr, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL header_static.c:%d: (%s) ", line, expr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (++failures >= 100)
        exit(1);
}
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond))                                                           \
            fail_at(__LINE__, #cond, __VA_ARGS__);                             \
    } while (0)
#define REQUIRE(cond, ...)                                                     \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fail_at(__LINE__, #cond, __VA_ARGS__);                             \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static void check_block(const char *what, void *p, size_t n, size_t align, int line)
{
    if (p == NULL) {
        fail_at(line, "p != NULL", "%s(%zu) = NULL (errno %d)", what, n, errno);
        return;
    }
    if (align < 16)
        align = 16;
    if (!aligned(p, align))
        fail_at(line, "aligned", "%s(%zu) = %p not %zu-aligned", what, n, p, align);
    size_t u = m_usable(p);
    if (u < n)
        fail_at(line, "usable >= n", "%s(%zu): usable size %zu", what, n, u);
    else
        memset(p, 0xA5, u);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + seed);
}

static size_t verify(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 7 + seed))
            return i;
    return n;
}

#define THREADS 4
#define PER_THREAD 2000

static void *thread_alloc(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    unsigned char **blocks = malloc(PER_THREAD * sizeof *blocks); /* plain malloc */
    if (blocks == NULL)
        return NULL;
    for (unsigned i = 0; i < PER_THREAD; i++) {
        size_t n = (i * 131 + id * 17) % 5000 + 1;
        blocks[i] = m_malloc(n);
        if (blocks[i] == NULL) {
            free(blocks);
            return NULL;
        }
        fill(blocks[i], n, id + i);
        if (i % 3 == 0) { /* some freed by the allocating thread */
            m_free(blocks[i]);
            blocks[i] = NULL;
        }
    }
    return blocks;
}

int main(void)
{
    long pgl = sysconf(_SC_PAGESIZE);
    REQUIRE(pgl > 0, "sysconf failed");
    size_t pg = (size_t)pgl;

    /* malloc, usable size, alignment */
    for (size_t n = 0; n <= 3000; n++) {
        void *p = m_malloc(n);
        check_block("mapalloc_malloc", p, n, 16, __LINE__);
        m_free(p);
    }
    for (size_t n = 4096; n <= ((size_t)64 << 20); n = n * 2 + 1) {
        void *p = m_malloc(n);
        check_block("mapalloc_malloc", p, n, 16, __LINE__);
        m_free(p);
    }
    CHECK(m_usable(NULL) == 0, "mapalloc_malloc_usable_size(NULL) = %zu", m_usable(NULL));

    /* malloc(0) */
    void *z1 = m_malloc(0), *z2 = m_malloc(0);
    CHECK(z1 != NULL && z2 != NULL && z1 != z2, "mapalloc_malloc(0): %p %p", z1, z2);
    m_free(z1);
    m_free(z2);

    /* free(NULL) and errno */
    errno = EDOM;
    m_free(NULL);
    CHECK(errno == EDOM, "mapalloc_free(NULL) changed errno to %d", errno);
    void *e = m_malloc(300000);
    REQUIRE(e != NULL, "mapalloc_malloc failed");
    errno = EDOM;
    m_free(e);
    CHECK(errno == EDOM, "mapalloc_free changed errno to %d", errno);

    /* huge sizes */
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 4095, (size_t)PTRDIFF_MAX, (size_t)PTRDIFF_MAX + 1,
                                  (size_t)1 << 62};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        errno = 0;
        void *p = m_malloc(huge[i]);
        CHECK(p == NULL && errno == ENOMEM, "mapalloc_malloc(%zu) = %p errno %d", huge[i], p, errno);
    }

    /* calloc */
    {
        void *d = m_malloc(5000);
        REQUIRE(d != NULL, "mapalloc_malloc failed");
        memset(d, 0xFF, 5000);
        m_free(d);
        unsigned char *c = m_calloc(1000, 5);
        REQUIRE(c != NULL, "mapalloc_calloc failed");
        size_t nz = 0;
        for (size_t i = 0; i < 5000; i++)
            nz += c[i] != 0;
        CHECK(nz == 0, "mapalloc_calloc: %zu nonzero bytes", nz);
        check_block("mapalloc_calloc", c, 5000, 16, __LINE__);
        m_free(c);
        errno = 0;
        void *o = m_calloc((size_t)1 << 32, (size_t)1 << 32);
        CHECK(o == NULL && errno == ENOMEM, "mapalloc_calloc overflow = %p errno %d", o, errno);
        errno = 0;
        o = m_calloc(SIZE_MAX, 2);
        CHECK(o == NULL && errno == ENOMEM, "mapalloc_calloc(SIZE_MAX, 2) = %p errno %d", o, errno);
    }

    /* realloc */
    {
        unsigned char *p = m_realloc(NULL, 10);
        check_block("mapalloc_realloc(NULL)", p, 10, 16, __LINE__);
        REQUIRE(p != NULL, "mapalloc_realloc(NULL, 10) failed");
        fill(p, 10, 1);
        size_t n = 10;
        for (size_t m = 20; m < ((size_t)24 << 20); m = m * 2 + 3) {
            p = m_realloc(p, m);
            REQUIRE(p != NULL, "mapalloc_realloc(%zu) failed", m);
            CHECK(verify(p, n, 1) == n, "mapalloc_realloc %zu -> %zu lost contents", n, m);
            fill(p, m, 1);
            n = m;
        }
        for (size_t m = n / 3; m > 5; m /= 3) {
            p = m_realloc(p, m);
            REQUIRE(p != NULL, "mapalloc_realloc shrink to %zu failed", m);
            CHECK(verify(p, m, 1) == m, "mapalloc_realloc shrink to %zu lost contents", m);
            n = m;
        }
        errno = 0;
        void *q = m_realloc(p, SIZE_MAX - 100);
        CHECK(q == NULL && errno == ENOMEM, "mapalloc_realloc(huge) = %p errno %d", q, errno);
        CHECK(verify(p, n, 1) == n, "failed mapalloc_realloc damaged the old block");
        errno = 0;
        q = m_reallocarray(p, SIZE_MAX / 2 + 1, 2);
        CHECK(q == NULL && errno == ENOMEM, "mapalloc_reallocarray overflow = %p errno %d", q, errno);
        CHECK(verify(p, n, 1) == n, "failed mapalloc_reallocarray damaged the old block");
        q = m_reallocarray(p, 100, 3);
        REQUIRE(q != NULL, "mapalloc_reallocarray(p, 100, 3) failed");
        CHECK(verify(q, n, 1) == n, "mapalloc_reallocarray lost contents");
        p = q;
        /* realloc(p, 0) frees and returns NULL */
        q = m_realloc(p, 0);
        CHECK(q == NULL, "mapalloc_realloc(p, 0) = %p, want NULL", q);
        if (q)
            m_free(q);
    }

    /* posix_memalign / aligned_alloc / memalign */
    {
        void *sentinel = (void *)(uintptr_t)0xDEADBEE0, *p;
        for (size_t a = sizeof(void *); a <= ((size_t)4 << 20); a *= 2) {
            p = sentinel;
            int rc = m_posix_memalign(&p, a, a + 5);
            CHECK(rc == 0, "mapalloc_posix_memalign(%zu) = %d", a, rc);
            if (rc == 0) {
                check_block("mapalloc_posix_memalign", p, a + 5, a, __LINE__);
                m_free(p);
            }
            p = m_aligned_alloc(a, 3 * a);
            check_block("mapalloc_aligned_alloc", p, 3 * a, a, __LINE__);
            m_free(p);
            p = m_memalign(a, 100);
            check_block("mapalloc_memalign", p, 100, a, __LINE__);
            m_free(p);
        }
        static const size_t bad[] = {0, 4, 24, 100};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            p = sentinel;
            int rc = m_posix_memalign(&p, bad[i], 64);
            CHECK(rc == EINVAL && p == sentinel, "mapalloc_posix_memalign(align %zu) = %d, *memptr %p", bad[i], rc,
                  p);
        }
        p = sentinel;
        int rc = m_posix_memalign(&p, 64, SIZE_MAX - 10);
        CHECK(rc == ENOMEM && p == sentinel, "mapalloc_posix_memalign(huge) = %d, *memptr %p", rc, p);
        /* glibc 2.36's rules: not a power of two rounds up; EINVAL only when
         * no power of two is left */
        static const size_t odd[] = {0, 3, 24, 100, 4097};
        static const size_t want[] = {16, 16, 32, 128, 8192};
        for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
            p = m_aligned_alloc(odd[i], 64);
            CHECK(p != NULL && (uintptr_t)p % want[i] == 0, "mapalloc_aligned_alloc(%zu) = %p", odd[i], p);
            m_free(p);
            p = m_memalign(odd[i], 64);
            CHECK(p != NULL && (uintptr_t)p % want[i] == 0, "mapalloc_memalign(%zu) = %p", odd[i], p);
            m_free(p);
        }
        errno = 0;
        p = m_aligned_alloc(SIZE_MAX, 64);
        CHECK(p == NULL && errno == EINVAL, "mapalloc_aligned_alloc(SIZE_MAX) = %p errno %d", p, errno);
        errno = 0;
        p = m_memalign(((size_t)1 << 63) + 1, 64);
        CHECK(p == NULL && errno == EINVAL, "mapalloc_memalign(2^63 + 1) = %p errno %d", p, errno);
    }

    /* valloc / pvalloc */
    {
        void *p = m_valloc(pg + 1);
        check_block("mapalloc_valloc", p, pg + 1, pg, __LINE__);
        m_free(p);
        p = m_pvalloc(pg + 1);
        check_block("mapalloc_pvalloc", p, 2 * pg, pg, __LINE__);
        m_free(p);
        p = m_pvalloc(0);
        check_block("mapalloc_pvalloc", p, pg, pg, __LINE__);
        m_free(p);
        errno = 0;
        p = m_pvalloc(SIZE_MAX - pg + 2);
        CHECK(p == NULL && errno == ENOMEM, "mapalloc_pvalloc(overflowing) = %p errno %d", p, errno);
    }

    /* sized frees */
    {
        for (size_t n = 1; n < 100000; n = n * 3 + 1) {
            void *p = m_malloc(n);
            REQUIRE(p != NULL, "mapalloc_malloc failed");
            memset(p, 1, n);
            m_free_sized(p, n);
        }
        void *p = m_malloc(5000);
        REQUIRE(p != NULL, "mapalloc_malloc failed");
        p = m_realloc(p, 100);
        REQUIRE(p != NULL, "mapalloc_realloc failed");
        m_free_sized(p, 100);
        m_free_sized(NULL, 0);
        for (size_t a = 16; a <= ((size_t)1 << 20); a *= 8) {
            p = m_aligned_alloc(a, 2 * a);
            REQUIRE(p != NULL, "mapalloc_aligned_alloc failed");
            memset(p, 2, 2 * a);
            m_free_aligned_sized(p, a, 2 * a);
        }
    }

    /* cross-thread frees */
    {
        pthread_t t[THREADS];
        for (unsigned i = 0; i < THREADS; i++)
            REQUIRE(pthread_create(&t[i], NULL, thread_alloc, (void *)(uintptr_t)i) == 0, "pthread_create failed");
        for (unsigned i = 0; i < THREADS; i++) {
            unsigned char **blocks = NULL;
            pthread_join(t[i], (void **)&blocks);
            REQUIRE(blocks != NULL, "thread %u failed to allocate", i);
            for (unsigned k = 0; k < PER_THREAD; k++) {
                if (blocks[k] == NULL)
                    continue;
                size_t n = (k * 131 + i * 17) % 5000 + 1;
                CHECK(verify(blocks[k], n, i + k) == n, "block %u of thread %u corrupted", k, i);
                m_free(blocks[k]);
            }
            free(blocks);
        }
    }

    /* trim and stats */
    {
        int r = m_trim(0);
        CHECK(r == 0 || r == 1, "mapalloc_malloc_trim(0) = %d", r);
        char path[] = "/tmp/mapalloc-header-stats-XXXXXX";
        int fd = mkstemp(path);
        REQUIRE(fd >= 0, "mkstemp failed");
        unlink(path);
        fflush(stderr);
        int saved = dup(2);
        REQUIRE(saved >= 0 && dup2(fd, 2) == 2, "dup2 failed");
        m_stats_print();
        fflush(stderr);
        REQUIRE(dup2(saved, 2) == 2, "dup2 back failed");
        close(saved);
        struct stat st;
        REQUIRE(fstat(fd, &st) == 0, "fstat failed");
        CHECK(st.st_size > 0, "mapalloc_stats_print() printed nothing to stderr");
        close(fd);
    }

    if (failures) {
        fprintf(stderr, "header_static: %d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
