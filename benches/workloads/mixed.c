/* mixed: mixed sizes with a random live set, in the style of alloc-test.
 *
 * Each thread allocates blocks of log-uniform random size between 8 bytes and 64 KiB (as many
 * 8-16 B blocks as 32-64 KiB ones) and frees random live ones. The size of its live set
 * wanders: every PHASE operations a new target between 0 and MAX_LIVE blocks is drawn, and
 * the thread allocates or frees (mostly, not only) towards it, so the heap repeatedly grows
 * and shrinks. Every page of every block is written.
 */
#include "bench.h"

#define MIN_SIZE 8
#define MAX_SIZE 65536
#define MAX_LIVE 3000
#define PHASE 50000
#define OPS_PER_THREAD 15000000ULL /* at SCALE 1 */

typedef struct {
    int id;
    uint64_t ops;
    uint64_t result;
} worker;

typedef struct {
    void *p;
    uint32_t size;
    uint64_t tag;
} live_block;

static void *work(void *arg) {
    worker *w = arg;
    rng_t r;
    rng_seed(&r, seed_for(4, (uint64_t)w->id));
    live_block *live = xmalloc(sizeof(live_block) * MAX_LIVE);
    uint64_t n = 0, target = 0, h = 0;
    for (uint64_t i = 0; i < w->ops; i++) {
        if (i % PHASE == 0)
            target = rng_below(&r, MAX_LIVE + 1);
        /* Towards the target three times out of four. */
        int grow = n < target;
        if (rng_below(&r, 4) == 0)
            grow = !grow;
        if (n == 0)
            grow = 1;
        if (n == MAX_LIVE)
            grow = 0;
        if (grow) {
            live_block *b = &live[n++];
            b->size = (uint32_t)rng_log_range(&r, MIN_SIZE, MAX_SIZE);
            b->tag = rng_next(&r);
            b->p = xmalloc(b->size);
            touch_block(b->p, b->size, b->tag);
            h += b->size;
        } else {
            uint64_t k = rng_below(&r, n);
            check_touched(live[k].p, live[k].size, live[k].tag);
            free(live[k].p);
            h = h * 3 + k;
            live[k] = live[--n];
        }
    }
    for (uint64_t k = 0; k < n; k++) {
        check_touched(live[k].p, live[k].size, live[k].tag);
        free(live[k].p);
    }
    free(live);
    w->result = mix(h, n);
    return NULL;
}

int main(int argc, char **argv) {
    bench_args a = bench_parse(argc, argv, "mixed", NULL);
    worker *w = xmalloc(sizeof(worker) * (size_t)a.threads);
    for (int t = 0; t < a.threads; t++)
        w[t] = (worker){.id = t, .ops = scaled(OPS_PER_THREAD, a.scale)};
    run_threads(a.threads, work, w, sizeof(worker));
    uint64_t h = 0;
    for (int t = 0; t < a.threads; t++)
        h = mix(h, w[t].result);
    free(w);
    print_checksum(h);
    return 0;
}
