/* rpmalloc: per-thread size ranges and batches handed between threads, in the shape of
 * rpmalloc-benchmark (mimalloc-bench's rptest). Our own code.
 *
 * Thread i draws its sizes from a range of its own: log-uniform from 16 B up to
 * 512 B << (i % 4) (512 B, 1, 2 or 4 KiB), and one block in 64 from 4 to 32 KiB. It keeps a
 * live set of LIVE blocks and runs CYCLES cycles of:
 *   1. take every batch waiting in its mailbox, verify and free each block (and the batch
 *      array), all allocated by another thread;
 *   2. churn: CHURN times free the block of a random slot and allocate a replacement;
 *   3. hand off: move the blocks of HANDOFF random slots into a batch for the mailbox of
 *      thread (i + 1) % THREADS and allocate fresh blocks in their place.
 * With one thread the batches come back to their own thread a cycle later. A thread that
 * is AHEAD cycles ahead of its receiver waits for it: the lagging thread has the most to
 * free, and would otherwise fall ever further behind.
 * Blocks pushed to a thread that has finished are freed by main.
 *
 * The stream hash of a thread depends only on its PRNG; what it receives, and so what it
 * frees, depends on the schedule and goes only into the ledger.
 */
#include "bench.h"

#define MIN_SIZE 16
#define BIG_MIN 4096
#define BIG_MAX 32768
#define BIG_ONE_IN 64
#define LIVE 2048
#define CHURN 1024
#define HANDOFF 256
#define AHEAD 32 /* cycles (~3 ms here): a receiver off its core for a while stalls no one */
#define CYCLES 4000ULL /* at SCALE 1 */

typedef struct {
    int id, threads;
    uint64_t cycles;
    mailbox *boxes;
    uint64_t result;
    ledger led;
} worker;

static uint64_t draw_size(rng_t *r, uint64_t max) {
    if (rng_below(r, BIG_ONE_IN) == 0)
        return rng_range(r, BIG_MIN, BIG_MAX);
    return rng_log_range(r, MIN_SIZE, max);
}

static void free_batches(ledger *l, batch *b) {
    while (b) {
        batch *next = b->next;
        for (uint64_t j = 0; j < b->count; j++)
            ledger_free(l, b->blocks[j], MIN_SIZE, BIG_MAX);
        free(b);
        b = next;
    }
}

static void *work(void *arg) {
    worker *w = arg;
    rng_t r;
    rng_seed(&r, seed_for(0x20, (uint64_t)w->id));
    uint64_t max = 512ULL << (w->id % 4);
    mailbox *mine = &w->boxes[w->id], *next = &w->boxes[(w->id + 1) % w->threads];
    void **live = xmalloc(sizeof(void *) * LIVE);
    uint64_t h = 0;
    for (int k = 0; k < LIVE; k++)
        live[k] = ledger_malloc(&w->led, draw_size(&r, max), rng_next(&r));
    for (uint64_t c = 0; c < w->cycles; c++) {
        mailbox_started(mine, c + 1);
        free_batches(&w->led, mailbox_take(mine));
        for (int i = 0; i < CHURN; i++) {
            uint64_t k = rng_below(&r, LIVE);
            uint64_t size = draw_size(&r, max);
            ledger_free(&w->led, live[k], MIN_SIZE, BIG_MAX);
            live[k] = ledger_malloc(&w->led, size, rng_next(&r));
            h += size ^ (k << 24);
        }
        batch *b = batch_new(HANDOFF);
        for (int i = 0; i < HANDOFF; i++) {
            /* A slot already emptied this cycle is skipped: the batch may be short. */
            uint64_t k = rng_below(&r, LIVE);
            if (!live[k])
                continue;
            b->blocks[b->count++] = live[k];
            live[k] = NULL;
        }
        for (int k = 0; k < LIVE; k++)
            if (!live[k])
                live[k] = ledger_malloc(&w->led, draw_size(&r, max), rng_next(&r));
        h = mix(h, b->count);
        mailbox_wait(next, c + 1, AHEAD);
        mailbox_push(next, b);
    }
    for (int k = 0; k < LIVE; k++)
        ledger_free(&w->led, live[k], MIN_SIZE, BIG_MAX);
    free(live);
    mailbox_close(mine);
    free_batches(&w->led, mailbox_take(mine));
    w->result = h;
    return NULL;
}

int main(int argc, char **argv) {
    bench_args a = bench_parse(argc, argv, "rpmalloc", NULL);
    mailbox *boxes = xmalloc(sizeof(mailbox) * (size_t)a.threads);
    for (int t = 0; t < a.threads; t++)
        mailbox_init(&boxes[t]);
    worker *w = xmalloc(sizeof(worker) * (size_t)a.threads);
    for (int t = 0; t < a.threads; t++)
        w[t] = (worker){.id = t,
                        .threads = a.threads,
                        .cycles = scaled(CYCLES, a.scale),
                        .boxes = boxes};
    run_threads(a.threads, work, w, sizeof(worker));
    ledger total = {0}, late = {0};
    uint64_t h = 0;
    for (int t = 0; t < a.threads; t++) {
        free_batches(&late, mailbox_take(&boxes[t]));
        h = mix(h, w[t].result);
        ledger_add(&total, &w[t].led);
    }
    ledger_add(&total, &late);
    ledger_check(&total);
    free(w);
    free(boxes);
    print_checksum(mix(h, total.allocated));
    return 0;
}
