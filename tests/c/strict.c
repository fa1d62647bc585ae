/* strict: the properties of strict mode (MAPALLOC_STRICT=1), checked from C under the preload.
 *
 *   strict props          every observable property; prints "ok"
 *   strict props-nozero   the same under MAPALLOC_STRICT_ZERO=0, whose freed blocks keep
 *                         their bytes
 *   strict CASE           one deliberate misuse that must abort (tests/preload.rs checks the
 *                         signal and the message): overflow, overflow-large, double-free,
 *                         corrupt-link, uaf-large, write-after-free (this one only while freed
 *                         blocks are cleared: not under MAPALLOC_STRICT_ZERO=0)
 *
 * Reading freed memory and writing into a block's slack are undefined behaviour in C; this
 * program does it on purpose, through volatile pointers, to observe what the allocator did.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

/* Hides a pointer from the compiler, whose warnings (and optimisations) would otherwise see
 * the deliberate out-of-bounds and after-free accesses. */
static void *launder(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* The stores to `p` must happen although `free(p)` follows (GCC drops them otherwise). */
static void keep_stores(void *p) {
    __asm__ volatile("" : : "r"(p) : "memory");
}

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                              \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

/* Allocates n bytes, fills them with 0xA5 and frees them; returns the freed block for the
 * caller to observe. */
static volatile unsigned char *fill_and_free(size_t n) {
    unsigned char *p = malloc(n);
    CHECK(p != NULL, "malloc(%zu)", n);
    memset(p, 0xA5, n);
    volatile unsigned char *v = launder(p);
    keep_stores(p);
    free(p);
    return v;
}

/* Freed memory reads zero: the requested bytes (up to 4 KiB) and the canary are cleared. */
static void freed_reads_zero(void) {
    static const size_t sizes[] = {1, 15, 16, 100, 1000, 3000, 4096};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        volatile unsigned char *v = fill_and_free(n);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += v[i] != 0;
        CHECK(bad == 0, "%zu of %zu bytes of a freed block are not zero", bad, n);
    }
}

/* Under MAPALLOC_STRICT_ZERO=0 a freed block keeps its bytes while it waits in the
 * quarantine (past its first 16, where a free-list link may go): the setting really turns
 * the clearing off. */
static void freed_keeps_bytes(void) {
    enum { N = 1000 };
    volatile unsigned char *v = fill_and_free(N);
    size_t kept = 0;
    for (size_t i = 16; i < N; i++)
        kept += v[i] == 0xA5;
    CHECK(kept == N - 16, "%zu of %d bytes of a freed block kept", kept, N - 16);
}

/* A large block taken again from the cache does not show its last owner's first 4 KiB (the
 * part of every freed block that is cleared), nor its canary. */
static void large_reuse_reads_zero(void) {
    enum { N = 1 << 20, CLEARED = 4096 };
    unsigned char *p = malloc(N);
    CHECK(p != NULL, "malloc(%d)", N);
    memset(p, 0xA5, 2 * CLEARED);
    memset(p + N - 64, 0xA5, 64);
    keep_stores(p);
    free(p);
    unsigned char *q = malloc(N);
    CHECK(q != NULL, "malloc(%d) again", N);
    size_t bad = 0;
    for (size_t i = 0; i < CLEARED; i++)
        bad += q[i] != 0;
    CHECK(bad == 0, "%zu of the first %d bytes of a reused large block are not zero%s", bad,
          CLEARED, q == p ? " (same block)" : "");
    free(q);
}

/* Reuse is delayed: a freed block is not handed out by the next 200 mallocs of its size. */
static void reuse_delayed(void) {
    enum { N = 200 };
    void *keep[N];
    void *p = malloc(48);
    free(p);
    int seen = 0;
    for (int i = 0; i < N; i++) {
        keep[i] = malloc(48);
        seen += keep[i] == p;
    }
    CHECK(seen == 0, "a freed block came back within %d mallocs", N);
    for (int i = 0; i < N; i++)
        free(keep[i]);
}

/* Big blocks too: a freed 256 KiB block (a large block) does not come back for the next
 * requests of its size, while it is kept in the large-block cache; a block freed earlier
 * does, so that a malloc/free loop still reuses cached pages. */
static void big_reuse_delayed(void) {
    enum { N = 4, SIZE = 256 << 10 };
    void *keep[N];
    uintptr_t p = (uintptr_t)malloc(SIZE);
    free((void *)p);
    int seen = 0;
    for (int i = 0; i < N; i++) {
        keep[i] = malloc(SIZE);
        seen += (uintptr_t)keep[i] == p;
    }
    CHECK(seen == 0, "a freed 256 KiB block came back within %d mallocs", N);
    for (int i = 0; i < N; i++)
        free(keep[i]);
    /* Now p is the oldest cached block, behind the four freed last. */
    void *q = malloc(SIZE);
    CHECK((uintptr_t)q == p, "the oldest cached 256 KiB block was not reused (%p, not %#lx)", q,
          (unsigned long)p);
    free(q);
}

/* Allocation order within a page is random: consecutive mallocs are not a fixed stride. */
static void order_random(void) {
    enum { N = 64 };
    char *p[N];
    for (int i = 0; i < N; i++)
        p[i] = malloc(200); /* a class nothing else here uses: a fresh page */
    int up = 0, same_stride = 0;
    for (int i = 1; i < N; i++) {
        up += p[i] > p[i - 1];
        same_stride += p[i] - p[i - 1] == p[1] - p[0];
    }
    CHECK(up < N - 8, "%d of %d consecutive blocks ascend", up, N - 1);
    CHECK(same_stride < N / 2, "%d of %d steps have the same stride", same_stride, N - 1);
    for (int i = 0; i < N; i++)
        free(p[i]);
}

/* malloc_usable_size reports the requested size: the slack holds the canary. */
static void usable_is_requested(void) {
    static const size_t sizes[] = {0, 1, 31, 32, 1000, 70000, 600000, 3 << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        char *p = malloc(sizes[k]);
        CHECK(p != NULL, "malloc(%zu)", sizes[k]);
        CHECK(malloc_usable_size(p) == sizes[k], "usable %zu for %zu", malloc_usable_size(p),
              sizes[k]);
        memset(p, 1, sizes[k]);
        free(p);
    }
    /* realloc keeps the contents and the canary follows the new size */
    char *p = malloc(10);
    memcpy(p, "0123456789", 10);
    p = realloc(p, 12);
    CHECK(p && memcmp(p, "0123456789", 10) == 0, "realloc in place lost data");
    CHECK(malloc_usable_size(p) == 12, "usable after realloc %zu", malloc_usable_size(p));
    p = realloc(p, 5000);
    CHECK(p && memcmp(p, "0123456789", 10) == 0, "realloc moving lost data");
    p = realloc(p, 2 << 20);
    CHECK(p && memcmp(p, "0123456789", 10) == 0, "realloc to large lost data");
    p[(2 << 20) - 1] = 7;
    p = realloc(p, 5 << 20);
    CHECK(p && memcmp(p, "0123456789", 10) == 0 && p[(2 << 20) - 1] == 7, "large growth");
    free(p);
    void *z = calloc(1000, 3);
    CHECK(z && malloc_usable_size(z) == 3000, "calloc usable");
    free(z);
    void *a = aligned_alloc(4096, 4096);
    CHECK(a && ((uintptr_t)a & 4095) == 0 && malloc_usable_size(a) == 4096, "aligned_alloc");
    free(a);
}

/* Sizes that are a whole number of pages or classes still get a canary and work. */
static void churn(void) {
    for (int round = 0; round < 3; round++) {
        void *p[1000];
        for (int i = 0; i < 1000; i++) {
            size_t n = (size_t)(i * 37 % 5000) + (size_t)round;
            p[i] = malloc(n);
            memset(p[i], i, n);
        }
        for (int i = 0; i < 1000; i += 2)
            free(p[i]);
        for (int i = 1; i < 1000; i += 2)
            free(p[i]);
    }
}

static int run_case(const char *c) {
    if (strcmp(c, "overflow") == 0) {
        volatile unsigned char *p = launder(malloc(20));
        p[20] ^= 0xFF; /* one byte past the request, inside the 32-byte class */
        free((void *)p);
    } else if (strcmp(c, "overflow-large") == 0) {
        /* 600001 bytes: the block is 600016, the canary covers the 15 bytes past the request
         * (one more would be the trailing guard: SIGSEGV). */
        volatile unsigned char *p = launder(malloc(600001));
        p[600001] ^= 0xFF;
        free((void *)p);
    } else if (strcmp(c, "double-free") == 0) {
        void *p = malloc(40);
        void *again = launder(p);
        free(p);
        free(again); /* still in the quarantine */
    } else if (strcmp(c, "corrupt-link") == 0) {
        /* The first malloc of a fresh class carves a batch of blocks at the start of a
         * 64 KiB page; all but the one returned wait on the free list, their first word an
         * encoded link. Overwrite those links (a use after free would), then allocate. */
        char *p = malloc(90); /* 96-byte class, used by nothing else here */
        uintptr_t start = (uintptr_t)p & ~(uintptr_t)0xFFFF;
        for (uintptr_t b = start; b < start + 42 * 96; b += 96)
            if (b != (uintptr_t)p)
                *(volatile uint64_t *)b = 0x4141414141414141ULL;
        for (int i = 0; i < 64; i++)
            launder(malloc(90));
    } else if (strcmp(c, "write-after-free") == 0) {
        /* A freed block was cleared; a write into it (past its link word) is caught when the
         * block is handed out again: free it, push it through the quarantine with more frees
         * of its class (every other block, so that no page empties and is carved afresh),
         * then allocate the class until the page hands it back. */
        enum { N = 600 };
        static void *more[N];
        volatile char *p = launder(malloc(200)); /* 208-byte class, used by nothing else */
        for (int i = 0; i < N; i++)
            more[i] = malloc(200);
        free(launder((void *)p));
        p[40] = 'x';
        for (int i = 0; i < N; i += 2)
            free(more[i]);
        for (int i = 0; i < 4 * N; i++)
            launder(malloc(200));
    } else if (strcmp(c, "uaf-large") == 0) {
        volatile char *p = launder(malloc(2 << 20));
        p[0] = 1;
        free(launder((void *)p));
        return p[0]; /* the freed large block is PROT_NONE: SIGSEGV */
    } else {
        fprintf(stderr, "unknown case %s\n", c);
        return 2;
    }
    fprintf(stderr, "FAIL: %s did not abort\n", c);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: strict props | CASE\n");
        return 2;
    }
    if (strcmp(argv[1], "props-nozero") == 0) {
        freed_keeps_bytes();
    } else if (strcmp(argv[1], "props") == 0) {
        freed_reads_zero();
        large_reuse_reads_zero();
    } else {
        return run_case(argv[1]);
    }
    reuse_delayed();
    big_reuse_delayed();
    order_random();
    usable_is_requested();
    churn();
    if (failures)
        return 1;
    puts("ok");
    return 0;
}
