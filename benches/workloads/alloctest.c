/* alloctest: a fixed-count random live set over several size ranges, in the shape of
 * Sergey Ignatchenko's alloc-test. Our own code.
 *
 * Each thread fills LIVE slots, then STEPS times replaces the block of a random slot: verify
 * it, free it, allocate one of a new size. Sizes come from three ranges, uniform within each:
 * 80% small (8..64 B), 17% medium (65 B..1 KiB), 3% large (1..16 KiB). The live set is
 * large (32 Ki blocks, ~12 MiB, per thread), so unlike threadchurn's 4096 blocks the blocks
 * freed and the allocator's metadata behind them are mostly cold in the cache. No block
 * crosses threads. Every page of every block is written (bench.h's touch_block).
 */
#include "bench.h"

#define LIVE 32768
#define STEPS 6000000ULL /* replacements per thread at SCALE 1 */

typedef struct {
    int id;
    uint64_t steps;
    uint64_t result;
} worker;

typedef struct {
    void *p;
    uint32_t size;
    uint64_t tag;
} slot;

static uint32_t draw_size(rng_t *r) {
    uint64_t u = rng_below(r, 100);
    if (u < 80)
        return (uint32_t)rng_range(r, 8, 64);
    if (u < 97)
        return (uint32_t)rng_range(r, 65, 1024);
    return (uint32_t)rng_range(r, 1025, 16384);
}

static void fill(slot *s, rng_t *r) {
    s->size = draw_size(r);
    s->tag = rng_next(r);
    s->p = xmalloc(s->size);
    touch_block(s->p, s->size, s->tag);
}

static void *work(void *arg) {
    worker *w = arg;
    rng_t r;
    rng_seed(&r, seed_for(0x50, (uint64_t)w->id));
    slot *live = xmalloc(sizeof(slot) * LIVE);
    uint64_t h = 0;
    for (int k = 0; k < LIVE; k++)
        fill(&live[k], &r);
    for (uint64_t i = 0; i < w->steps; i++) {
        slot *s = &live[rng_below(&r, LIVE)];
        check_touched(s->p, s->size, s->tag);
        free(s->p);
        fill(s, &r);
        h += s->size ^ (i << 20);
    }
    for (int k = 0; k < LIVE; k++) {
        check_touched(live[k].p, live[k].size, live[k].tag);
        free(live[k].p);
    }
    free(live);
    w->result = h;
    return NULL;
}

int main(int argc, char **argv) {
    bench_args a = bench_parse(argc, argv, "alloctest", NULL);
    worker *w = xmalloc(sizeof(worker) * (size_t)a.threads);
    for (int t = 0; t < a.threads; t++)
        w[t] = (worker){.id = t, .steps = scaled(STEPS, a.scale)};
    run_threads(a.threads, work, w, sizeof(worker));
    uint64_t h = 0;
    for (int t = 0; t < a.threads; t++)
        h = mix(h, w[t].result);
    free(w);
    print_checksum(h);
    return 0;
}
