/* Freed memory goes back to the OS (issue: memory return).
 *
 * Allocates about 1 GiB in small, medium and large blocks (a quarter of it on worker threads
 * that exit afterwards, so their heaps are abandoned), touches every byte, frees it all, then
 * idles 2 s making a few small calls. RSS must fall to at most 10% of the peak. Then 64 MiB
 * more are allocated and freed, and malloc_trim(0) must return 1 and leave RSS at most 5% of
 * the peak. Prints the numbers and "ok".
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)

static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f || fscanf(f, "%lu %lu", &size, &resident) != 2) {
        fprintf(stderr, "cannot read /proc/self/statm\n");
        exit(2);
    }
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

struct work {
    size_t small_bytes, medium_bytes, large_count;
    void **ptrs;
    size_t n;
    uint64_t seed;
};

/* Allocate and touch the blocks of one share of the working set. */
static void fill(struct work *w) {
    size_t cap = w->small_bytes / 16 + w->medium_bytes / 1024 + w->large_count + 16;
    w->ptrs = malloc(cap * sizeof(void *));
    if (!w->ptrs) {
        fprintf(stderr, "pointer array: out of memory\n");
        exit(2);
    }
    w->n = 0;
    size_t got = 0;
    while (got < w->small_bytes && w->n < cap) { /* 16 B .. 1 KiB */
        size_t sz = 16 + next_rand(&w->seed) % 1008;
        void *p = malloc(sz);
        if (!p) exit(3);
        memset(p, 0xa5, sz);
        w->ptrs[w->n++] = p;
        got += sz;
    }
    got = 0;
    while (got < w->medium_bytes && w->n < cap) { /* 1 KiB .. 256 KiB */
        size_t sz = 1024 + next_rand(&w->seed) % (255 * 1024);
        void *p = malloc(sz);
        if (!p) exit(3);
        memset(p, 0x5a, sz);
        w->ptrs[w->n++] = p;
        got += sz;
    }
    for (size_t i = 0; i < w->large_count && w->n < cap; i++) { /* 4 MiB .. 12 MiB */
        size_t sz = 4 * MIB + next_rand(&w->seed) % (8 * MIB);
        void *p = malloc(sz);
        if (!p) exit(3);
        memset(p, 0x3c, sz);
        w->ptrs[w->n++] = p;
    }
}

/* Free in a scattered order, so pages empty only at the end. */
static void drain(struct work *w) {
    const size_t stride = 7919;
    for (size_t start = 0; start < stride; start++)
        for (size_t i = start; i < w->n; i += stride) free(w->ptrs[i]);
    free(w->ptrs);
    w->ptrs = NULL;
}

static void *worker(void *arg) {
    struct work *w = arg;
    fill(w);
    drain(w);
    return NULL;
}

int main(void) {
    size_t base = rss_bytes();

    /* Three quarters on the main thread, kept until every share has been touched. */
    struct work mainw = {300 * MIB, 420 * MIB, 12, NULL, 0, rng_state};
    fill(&mainw);
    size_t peak_main = rss_bytes();

    /* A quarter on two worker threads that free their blocks and exit. */
    struct work ws[2] = {{60 * MIB, 60 * MIB, 3, NULL, 0, 11}, {60 * MIB, 60 * MIB, 3, NULL, 0, 12}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, worker, &ws[i]) != 0) return 2;
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);

    size_t peak = rss_bytes();
    if (peak_main > peak) peak = peak_main;
    drain(&mainw);
    size_t after_free = rss_bytes();

    /* Idle for 2 s, with a few small calls. */
    for (int i = 0; i < 20; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        void *p = malloc(32 + i);
        if (!p) return 3;
        memset(p, i, 32 + i);
        free(p);
    }
    size_t idle = rss_bytes();

    /* Then 64 MiB more, freed and trimmed at once: malloc_trim(0) has something to release
     * (the idle purge may already have released everything of the first round). */
    struct work again = {32 * MIB, 32 * MIB, 0, NULL, 0, 99};
    fill(&again);
    drain(&again);
    int trimmed = malloc_trim(0);
    size_t after_trim = rss_bytes();

    printf("base %zu MiB, peak %zu MiB, after free %zu MiB, idle 2 s %zu MiB (%.1f%%), "
           "malloc_trim(0)=%d then %zu MiB (%.1f%%)\n",
           base / MIB, peak / MIB, after_free / MIB, idle / MIB, 100.0 * idle / peak, trimmed,
           after_trim / MIB, 100.0 * after_trim / peak);
    int ok = 1;
    if (peak < 800 * MIB) {
        printf("peak RSS %zu MiB: the working set was not resident\n", peak / MIB);
        ok = 0;
    }
    if (idle > peak / 10) {
        printf("RSS after 2 s idle is above 10%% of the peak\n");
        ok = 0;
    }
    if (trimmed != 1) {
        printf("malloc_trim(0) returned %d, expected 1\n", trimmed);
        ok = 0;
    }
    if (after_trim > peak / 20) {
        printf("RSS after malloc_trim(0) is above 5%% of the peak\n");
        ok = 0;
    }
    if (!ok) return 1;
    printf("ok\n");
    return 0;
}
