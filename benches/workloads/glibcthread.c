/* glibcthread: the shape of glibc's benchtests/bench-malloc-thread.c. Our own code.
 *
 * Main draws two tables once: SIZES block sizes with an inverse-square distribution between
 * 4 B and 32 KiB (as many blocks below 8 B as above; 94% below 64 B) and OFFSETS random
 * indices into a working set of WORKING_SET pointers. Each thread starts with a working set
 * of NULL pointers and runs a tight loop over both tables (cyclically, each thread from its
 * own starting point): free the block at the next offset (free(NULL) until the slot was
 * used), malloc a block of the next size in its place. No block crosses threads; the
 * working set is small (1024 blocks), so this is the thread-local fast path, at the
 * smallest sizes, almost alone.
 *
 * glibc's benchmark runs the loop for a fixed time (10 s) and reports the time per
 * iteration; this one runs a fixed number of iterations (the contract: fixed work, never
 * time-based) and is timed, which gives the same ratio between two allocators. Unlike
 * glibc's loop it stamps each block (first 4 or 8 bytes, last 8) and verifies the stamp
 * before the free, and frees the working set at the end.
 */
#include "bench.h"

#define MIN_SIZE 4
#define MAX_SIZE 32768
#define WORKING_SET 1024
#define SIZES 8000
#define OFFSETS (WORKING_SET * 16)
#define ITERATIONS 30000000ULL /* per thread at SCALE 1 */

static uint32_t sizes[SIZES];
static uint16_t offsets[OFFSETS];

typedef struct {
    int id;
    uint64_t iterations;
    uint64_t result;
} worker;

/* Inverse-square density on [MIN_SIZE, MAX_SIZE]: the inverse of its distribution function
 * F(s) = (1/MIN - 1/s) / (1/MIN - 1/MAX) at a uniform u in [0, 1). */
static uint32_t inverse_square(rng_t *r) {
    double u = (double)(rng_next(r) >> 11) / 9007199254740992.0;
    double a = 1.0 / MIN_SIZE, b = 1.0 / MAX_SIZE;
    double s = 1.0 / (a - u * (a - b));
    return s < MIN_SIZE ? MIN_SIZE : (s > MAX_SIZE ? MAX_SIZE : (uint32_t)s);
}

/* The stamp of a block of n >= 4 bytes: its first 4 (n < 8) or 8 bytes, and its last 8
 * when n >= 16. */
static inline void stamp(char *p, uint32_t n, uint64_t tag) {
    memcpy(p, &tag, n < 8 ? 4 : 8);
    if (n >= 16)
        store64(p + n - 8, ~tag);
}

static inline void verify(const char *p, uint32_t n, uint64_t tag) {
    uint64_t head = 0;
    memcpy(&head, p, n < 8 ? 4 : 8);
    uint64_t want = n < 8 ? (tag & 0xffffffffULL) : tag;
    if (head != want || (n >= 16 && load64(p + n - 8) != ~tag))
        FAIL("block %p of %u bytes: stamp corrupted", (const void *)p, n);
}

static void *work(void *arg) {
    worker *w = arg;
    char **ptr = xmalloc(sizeof(char *) * WORKING_SET);
    uint32_t *len = xmalloc(sizeof(uint32_t) * WORKING_SET);
    uint64_t *tag = xmalloc(sizeof(uint64_t) * WORKING_SET);
    memset(ptr, 0, sizeof(char *) * WORKING_SET);
    unsigned si = (unsigned)(w->id * 7919) % SIZES, oi = (unsigned)(w->id * 104729) % OFFSETS;
    uint64_t h = 0, salt = seed_for(0x30, (uint64_t)w->id);
    for (uint64_t i = 0; i < w->iterations; i++) {
        unsigned k = offsets[oi];
        uint32_t n = sizes[si];
        oi = oi + 1 == OFFSETS ? 0 : oi + 1;
        si = si + 1 == SIZES ? 0 : si + 1;
        if (ptr[k])
            verify(ptr[k], len[k], tag[k]);
        free(ptr[k]);
        ptr[k] = xmalloc(n);
        len[k] = n;
        tag[k] = i ^ salt;
        stamp(ptr[k], n, tag[k]);
        h += n ^ ((uint64_t)k << 16);
    }
    for (int k = 0; k < WORKING_SET; k++)
        if (ptr[k]) {
            verify(ptr[k], len[k], tag[k]);
            free(ptr[k]);
        }
    free(ptr);
    free(len);
    free(tag);
    w->result = h;
    return NULL;
}

int main(int argc, char **argv) {
    bench_args a = bench_parse(argc, argv, "glibcthread", NULL);
    rng_t r;
    rng_seed(&r, seed_for(0x30, ~0ULL));
    for (int i = 0; i < SIZES; i++)
        sizes[i] = inverse_square(&r);
    for (int i = 0; i < OFFSETS; i++)
        offsets[i] = (uint16_t)rng_below(&r, WORKING_SET);
    worker *w = xmalloc(sizeof(worker) * (size_t)a.threads);
    for (int t = 0; t < a.threads; t++)
        w[t] = (worker){.id = t, .iterations = scaled(ITERATIONS, a.scale)};
    run_threads(a.threads, work, w, sizeof(worker));
    uint64_t h = 0;
    for (int t = 0; t < a.threads; t++)
        h = mix(h, w[t].result);
    free(w);
    print_checksum(h);
    return 0;
}
