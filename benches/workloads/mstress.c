/* mstress: threads created and joined over and over while they allocate, in the shape of
 * mimalloc-bench's mstress (mimalloc's test-stress). Our own code.
 *
 * Main runs ROUNDS rounds; each starts THREADS fresh workers and joins them. A worker keeps
 * an array of LOCAL blocks and replaces random ones (sizes mostly 16..128 B, one in ten up
 * to 2 KiB, one in a hundred up to 64 KiB). One replacement in four is traded through a
 * shared array of transfer slots: the worker swaps its new block into a random slot with an
 * atomic exchange and keeps the block that was there, born on another thread or in an
 * earlier round, to free it later. A worker that ends frees its blocks but the first
 * quarter, which it leaves to the worker of the same index in the next round. After each
 * round main frees a random half of the transfer slots; the other half lives on. So blocks
 * are freed by other threads than their birth thread, often after that thread has exited,
 * and the allocator's per-thread state is set up and torn down THREADS times a round.
 *
 * Each worker's choices come from its own PRNG and do not depend on what it receives, so
 * its stream hash is schedule-free; which blocks it frees is not, and goes only into the
 * ledger that checks that every block was freed exactly once.
 */
#include "bench.h"

#define MIN_SIZE 16
#define MAX_SIZE 65536
#define LOCAL 1024
#define KEEP (LOCAL / 4)            /* blocks a worker leaves to the next round */
#define SLOTS_PER_THREAD 1024       /* transfer slots */
#define ROUNDS 40
#define OPS_PER_THREAD 8000000ULL /* replacements at SCALE 1, over all rounds */

static _Atomic(void *) *transfer;
static uint64_t nslots;

typedef struct {
    int id, round;
    uint64_t ops;
    void **kept; /* in: the previous round's KEEP blocks (or NULL); out: this round's */
    uint64_t result;
    ledger led;
} worker;

static uint64_t draw_size(rng_t *r) {
    uint64_t u = rng_below(r, 100);
    if (u == 0)
        return rng_range(r, 2049, MAX_SIZE);
    if (u <= 10)
        return rng_range(r, 129, 2048);
    return rng_range(r, MIN_SIZE, 128);
}

static void *work(void *arg) {
    worker *w = arg;
    rng_t r;
    rng_seed(&r, seed_for(0x10 + (uint64_t)w->round, (uint64_t)w->id));
    void **local = xmalloc(sizeof(void *) * LOCAL);
    memset(local, 0, sizeof(void *) * LOCAL);
    if (w->kept) {
        memcpy(local, w->kept, sizeof(void *) * KEEP);
        free(w->kept); /* allocated by the previous round's thread */
    }
    uint64_t h = 0;
    for (uint64_t i = 0; i < w->ops; i++) {
        uint64_t k = rng_below(&r, LOCAL);
        uint64_t size = draw_size(&r);
        uint64_t tag = rng_next(&r);
        if (local[k])
            ledger_free(&w->led, local[k], MIN_SIZE, MAX_SIZE);
        local[k] = ledger_malloc(&w->led, size, tag);
        h += size * 0x100000001b3ULL ^ (tag >> 32) ^ k;
        if (rng_below(&r, 4) == 0) {
            uint64_t s = rng_below(&r, nslots);
            local[k] = atomic_exchange_explicit(&transfer[s], local[k], memory_order_acq_rel);
            h = h * 5 + s;
        }
    }
    for (int k = KEEP; k < LOCAL; k++)
        if (local[k])
            ledger_free(&w->led, local[k], MIN_SIZE, MAX_SIZE);
    w->kept = xmalloc(sizeof(void *) * KEEP);
    memcpy(w->kept, local, sizeof(void *) * KEEP);
    free(local);
    w->result = h;
    return NULL;
}

int main(int argc, char **argv) {
    bench_args a = bench_parse(argc, argv, "mstress", NULL);
    nslots = (uint64_t)a.threads * SLOTS_PER_THREAD;
    transfer = xmalloc(sizeof(*transfer) * nslots);
    for (uint64_t s = 0; s < nslots; s++)
        atomic_init(&transfer[s], NULL);
    uint64_t ops = scaled(OPS_PER_THREAD, a.scale) / ROUNDS + 1;
    worker *w = xmalloc(sizeof(worker) * (size_t)a.threads);
    memset(w, 0, sizeof(worker) * (size_t)a.threads);
    ledger total = {0}, mine = {0};
    rng_t r;
    rng_seed(&r, seed_for(0x0f, 0));
    uint64_t h = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int t = 0; t < a.threads; t++) {
            w[t].id = t;
            w[t].round = round;
            w[t].ops = ops;
        }
        run_threads(a.threads, work, w, sizeof(worker));
        for (int t = 0; t < a.threads; t++)
            h = mix(h, w[t].result);
        /* Main frees a random half of the transfer slots (its choice is schedule-free;
         * which blocks sit there is not). */
        for (uint64_t s = 0; s < nslots; s++)
            if (rng_below(&r, 2) == 0) {
                void *p = atomic_exchange(&transfer[s], NULL);
                if (p)
                    ledger_free(&mine, p, MIN_SIZE, MAX_SIZE);
            }
    }
    for (uint64_t s = 0; s < nslots; s++) {
        void *p = atomic_load(&transfer[s]);
        if (p)
            ledger_free(&mine, p, MIN_SIZE, MAX_SIZE);
    }
    for (int t = 0; t < a.threads; t++) {
        for (int k = 0; k < KEEP; k++)
            if (w[t].kept[k])
                ledger_free(&mine, w[t].kept[k], MIN_SIZE, MAX_SIZE);
        free(w[t].kept);
        ledger_add(&total, &w[t].led);
    }
    ledger_add(&total, &mine);
    ledger_check(&total);
    free(w);
    free((void *)transfer);
    print_checksum(mix(h, total.allocated));
    return 0;
}
