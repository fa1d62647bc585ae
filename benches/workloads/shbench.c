/* shbench: the shapes of SmartHeap's sh6bench and sh8bench (as mimalloc-bench runs them).
 * Our own code.
 *
 * Each thread runs ROUNDS rounds. A round picks a base size from a sweep over 16..1015 B
 * (one round in eight: eight times that, up to 8 KiB, and a quarter as many blocks), and
 * allocates arrays of blocks of base to base + base/4 bytes, in three phases:
 *   1. allocate COUNT blocks, free them in reverse order (last allocated first);
 *   2. allocate COUNT blocks, free them in a random order (a shuffled index);
 *   3. allocate COUNT blocks, free them in allocation order.
 * MODE sh6: as above, every block is freed by its own thread.
 * MODE sh8: in phase 3 one block in four is not freed but put in a batch for the next
 *   thread ((i + 1) % THREADS), which frees the batches waiting for it at the start of each
 *   round; a thread AHEAD rounds ahead of the next one waits for it (see bench.h's
 *   mailboxes). With one thread the batches come back to their own thread.
 *
 * The stream hash of a thread depends only on its PRNG; in sh8 what it receives depends on
 * the schedule and goes only into the ledger.
 */
#include "bench.h"

#define MIN_SIZE 16
#define MAX_SIZE (1015 * 8 * 5 / 4) /* the largest base, eight times, plus a quarter */
#define COUNT 1000
#define AHEAD 16 /* rounds (~5 ms here): a receiver off its core for a while stalls no one */
#define ROUNDS 2000ULL /* per thread at SCALE 1 */

typedef struct {
    int id, threads, cross;
    uint64_t rounds;
    mailbox *boxes;
    uint64_t result;
    ledger led;
} worker;

static void free_batches(ledger *l, batch *b) {
    while (b) {
        batch *next = b->next;
        for (uint64_t j = 0; j < b->count; j++)
            ledger_free(l, b->blocks[j], MIN_SIZE, MAX_SIZE);
        free(b);
        b = next;
    }
}

static uint64_t fill(worker *w, rng_t *r, void **a, uint64_t n, uint64_t base) {
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t size = base + rng_below(r, base / 4 + 1);
        a[i] = ledger_malloc(&w->led, size, rng_next(r));
        bytes += size;
    }
    return bytes;
}

static void *work(void *arg) {
    worker *w = arg;
    rng_t r;
    rng_seed(&r, seed_for(0x40 + (uint64_t)w->cross, (uint64_t)w->id));
    mailbox *mine = &w->boxes[w->id], *next = &w->boxes[(w->id + 1) % w->threads];
    void **a = xmalloc(sizeof(void *) * COUNT);
    uint32_t *order = xmalloc(sizeof(uint32_t) * COUNT);
    uint64_t h = 0;
    for (uint64_t round = 0; round < w->rounds; round++) {
        if (w->cross) {
            mailbox_started(mine, round + 1);
            free_batches(&w->led, mailbox_take(mine));
        }
        uint64_t base = MIN_SIZE + (round * 40 + (uint64_t)w->id * 8) % 1000;
        uint64_t n = COUNT;
        if (round % 8 == 7) {
            base *= 8;
            n = COUNT / 4;
        }
        /* 1. reverse order */
        h = mix(h, fill(w, &r, a, n, base));
        for (uint64_t i = n; i-- > 0;)
            ledger_free(&w->led, a[i], MIN_SIZE, MAX_SIZE);
        /* 2. random order */
        h = mix(h, fill(w, &r, a, n, base));
        for (uint32_t i = 0; i < n; i++)
            order[i] = i;
        for (uint64_t i = n - 1; i > 0; i--) {
            uint64_t j = rng_below(&r, i + 1);
            uint32_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (uint64_t i = 0; i < n; i++)
            ledger_free(&w->led, a[order[i]], MIN_SIZE, MAX_SIZE);
        /* 3. allocation order; sh8: one block in four to the next thread */
        h = mix(h, fill(w, &r, a, n, base));
        batch *b = w->cross ? batch_new(n / 4 + 1) : NULL;
        for (uint64_t i = 0; i < n; i++) {
            if (b && i % 4 == 0)
                b->blocks[b->count++] = a[i];
            else
                ledger_free(&w->led, a[i], MIN_SIZE, MAX_SIZE);
        }
        if (b) {
            mailbox_wait(next, round + 1, AHEAD);
            mailbox_push(next, b);
        }
    }
    if (w->cross) {
        mailbox_close(mine);
        free_batches(&w->led, mailbox_take(mine));
    }
    free(a);
    free(order);
    w->result = h;
    return NULL;
}

int main(int argc, char **argv) {
    bench_args a = bench_parse(argc, argv, "shbench", "sh6|sh8");
    int cross = strcmp(a.mode, "sh8") == 0;
    if (!cross && strcmp(a.mode, "sh6") != 0)
        FAIL("mode must be sh6 or sh8");
    mailbox *boxes = xmalloc(sizeof(mailbox) * (size_t)a.threads);
    for (int t = 0; t < a.threads; t++)
        mailbox_init(&boxes[t]);
    worker *w = xmalloc(sizeof(worker) * (size_t)a.threads);
    for (int t = 0; t < a.threads; t++)
        w[t] = (worker){.id = t,
                        .threads = a.threads,
                        .cross = cross,
                        .rounds = scaled(ROUNDS, a.scale),
                        .boxes = boxes};
    run_threads(a.threads, work, w, sizeof(worker));
    ledger total = {0}, late = {0};
    uint64_t h = (uint64_t)cross;
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
