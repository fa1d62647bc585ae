/* cache: false sharing in the style of Hoard's cache-thrash and cache-scratch.
 *
 * thrash (active false sharing): each thread repeatedly allocates a small object, writes it
 *   in a tight loop, and frees it. An allocator that hands objects of one cache line to
 *   different threads makes the cores fight over that line.
 * scratch (passive false sharing): the main thread allocates one small object per thread
 *   (likely neighbours in one cache line) and gives one to each thread, which frees it and
 *   then runs the thrash loop. An allocator that reuses the freed neighbour for the new
 *   object keeps the threads on one line.
 */
#include "bench.h"

#define OBJ_SIZE 8
#define ITERATIONS 3000ULL /* malloc/write/free cycles per thread at SCALE 1 */
#define WRITES 100000      /* passes over the object per cycle */

typedef struct {
    int id;
    uint64_t iterations;
    char *given; /* scratch: the object from the main thread, freed first */
    uint64_t result;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    rng_t r;
    rng_seed(&r, seed_for(2, (uint64_t)w->id));
    if (w->given) {
        if (load64(w->given) != (uint64_t)w->id * 0x0101010101010101ULL)
            FAIL("object given to thread %d corrupted", w->id);
        free(w->given);
    }
    uint64_t h = 0;
    for (uint64_t i = 0; i < w->iterations; i++) {
        volatile unsigned char *o = xmalloc(OBJ_SIZE);
        unsigned char start = (unsigned char)rng_next(&r);
        for (int k = 0; k < OBJ_SIZE; k++)
            o[k] = (unsigned char)(start + k);
        for (int j = 0; j < WRITES; j++)
            for (int k = 0; k < OBJ_SIZE; k++)
                o[k]++;
        for (int k = 0; k < OBJ_SIZE; k++) {
            unsigned char want = (unsigned char)(start + k + WRITES);
            if (o[k] != want)
                FAIL("thread %d: object byte %d is %u, expected %u", w->id, k, o[k], want);
            h = h * 131 + o[k];
        }
        free((void *)o);
    }
    w->result = h;
    return NULL;
}

int main(int argc, char **argv) {
    bench_args a = bench_parse(argc, argv, "cache", "thrash|scratch");
    int scratch = strcmp(a.mode, "scratch") == 0;
    if (!scratch && strcmp(a.mode, "thrash") != 0)
        FAIL("mode must be thrash or scratch");
    worker *w = xmalloc(sizeof(worker) * (size_t)a.threads);
    for (int t = 0; t < a.threads; t++) {
        w[t] = (worker){.id = t, .iterations = scaled(ITERATIONS, a.scale)};
        if (scratch) {
            w[t].given = xmalloc(OBJ_SIZE);
            store64(w[t].given, (uint64_t)t * 0x0101010101010101ULL);
        }
    }
    run_threads(a.threads, work, w, sizeof(worker));
    uint64_t h = (uint64_t)scratch;
    for (int t = 0; t < a.threads; t++)
        h = mix(h, w[t].result);
    free(w);
    print_checksum(h);
    return 0;
}
