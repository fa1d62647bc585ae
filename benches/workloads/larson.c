/* larson: server simulation in the style of Larson & Krishnan's benchmark.
 *
 * A shared array of slots holds live blocks (16..1000 bytes). Worker threads repeatedly pick
 * a random slot, allocate a new block of random size, swap it into the slot atomically and
 * free the block that was there, which was usually born on another thread. Workers live for
 * one round only: each of the ROUNDS rounds starts fresh threads, which inherit the blocks
 * of the previous round's threads (as a server's short-lived worker threads do), so even
 * with one thread per round blocks die on other threads than their birth thread.
 */
#include "bench.h"
#include <stdatomic.h>

#define SLOTS_PER_THREAD 4096
#define MIN_SIZE 16
#define MAX_SIZE 1000
#define ROUNDS 10
#define OPS_PER_THREAD 20000000ULL /* at SCALE 1, over all rounds */

static _Atomic(void *) *slots;
static uint64_t nslots;

typedef struct {
    int id, round;
    uint64_t ops;
    uint64_t result;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    rng_t r;
    rng_seed(&r, seed_for((uint64_t)w->round, (uint64_t)w->id));
    uint64_t h = 0;
    for (uint64_t i = 0; i < w->ops; i++) {
        uint64_t slot = rng_below(&r, nslots);
        uint64_t size = rng_range(&r, MIN_SIZE, MAX_SIZE);
        uint64_t tag = rng_next(&r);
        void *p = xmalloc(size);
        stamp_block(p, size, tag);
        void *old = atomic_exchange_explicit(&slots[slot], p, memory_order_acq_rel);
        check_block(old, MIN_SIZE, MAX_SIZE);
        free(old);
        h += slot * 0x100000001b3ULL ^ size ^ tag;
    }
    w->result = h;
    return NULL;
}

int main(int argc, char **argv) {
    bench_args a = bench_parse(argc, argv, "larson", NULL);
    nslots = (uint64_t)a.threads * SLOTS_PER_THREAD;
    slots = xmalloc(sizeof(*slots) * nslots);
    rng_t r;
    rng_seed(&r, seed_for(~0ULL, 0));
    for (uint64_t i = 0; i < nslots; i++) {
        uint64_t size = rng_range(&r, MIN_SIZE, MAX_SIZE);
        void *p = xmalloc(size);
        stamp_block(p, size, rng_next(&r));
        atomic_init(&slots[i], p);
    }
    uint64_t ops = scaled(OPS_PER_THREAD, a.scale) / ROUNDS + 1;
    worker *w = xmalloc(sizeof(worker) * (size_t)a.threads);
    uint64_t h = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int t = 0; t < a.threads; t++)
            w[t] = (worker){.id = t, .round = round, .ops = ops, .result = 0};
        run_threads(a.threads, work, w, sizeof(worker));
        for (int t = 0; t < a.threads; t++)
            h = mix(h, w[t].result);
    }
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < nslots; i++) {
        void *p = atomic_load(&slots[i]);
        bytes += check_block(p, MIN_SIZE, MAX_SIZE);
        free(p);
    }
    if (bytes < nslots * MIN_SIZE)
        FAIL("live set lost blocks");
    free(w);
    free((void *)slots);
    print_checksum(mix(h, nslots));
    return 0;
}
