/* bench.h: helpers shared by the C workloads of benches/workloads/.
 *
 * The contract of every workload (see benches/README.md):
 *   prog THREADS SCALE [MODE]
 * - THREADS: worker threads (1 for the one-thread row, nproc for the -Nt row, 4 x nproc for
 *   the oversubscribed -4Nt row). Every worker does the same fixed amount of work, so with
 *   THREADS <= cores the ideal wall time does not depend on THREADS.
 * - SCALE: multiplies the amount of work per worker (1 = full run, 0.1 = --quick), linearly
 *   (the -4Nt rows pass SCALE / 4, so that they do the -Nt row's total work). Never
 *   time-based.
 * - Deterministic: every random choice comes from a seeded PRNG (xoshiro256**) per thread,
 *   and the checksum combines per-thread values in thread order, so it does not depend on the
 *   schedule or on the allocator. Only memory contents that are the same under every
 *   allocator and every interleaving go into it.
 * - Self-checking: every block carries a stamp that is verified before it is freed; a
 *   mismatch (corruption, lost write, bad realloc copy) prints a message and exits 1.
 * - Output: the last line on stdout is `checksum <16 hex digits>`.
 * Only the system malloc/free/realloc are used, so any allocator can be preloaded.
 */
#ifndef BENCH_H
#define BENCH_H

#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *bench_name = "workload";

#define FAIL(...)                                                                            \
    do {                                                                                     \
        fprintf(stderr, "%s: FAILED: ", bench_name);                                         \
        fprintf(stderr, __VA_ARGS__);                                                        \
        fputc('\n', stderr);                                                                 \
        exit(1);                                                                             \
    } while (0)

/* --- PRNG: splitmix64 to seed, xoshiro256** to draw ----------------------------------- */

typedef struct {
    uint64_t s[4];
} rng_t;

static inline uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void rng_seed(rng_t *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(rng_t *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, n). */
static inline uint64_t rng_below(rng_t *r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi) {
    return lo + rng_below(r, hi - lo + 1);
}

/* Log-uniform in [lo, hi]: as many blocks of 8-16 B as of 32-64 KiB. */
static inline uint64_t rng_log_range(rng_t *r, uint64_t lo, uint64_t hi) {
    int lo_bits = 63 - __builtin_clzll(lo);
    int hi_bits = 63 - __builtin_clzll(hi);
    int bits = (int)rng_range(r, (uint64_t)lo_bits, (uint64_t)hi_bits);
    uint64_t base = 1ULL << bits;
    uint64_t v = base + rng_below(r, base);
    return v < lo ? lo : (v > hi ? hi : v);
}

/* Order-dependent hash combine (used only in a deterministic order). */
static inline uint64_t mix(uint64_t h, uint64_t v) {
    uint64_t x = h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
    return splitmix64(&x);
}

static inline uint64_t seed_for(uint64_t a, uint64_t b) {
    uint64_t x = 0x6d6170616c6c6f63ULL ^ (a * 0x100000001b3ULL) ^ (b << 32);
    return splitmix64(&x);
}

/* --- arguments ------------------------------------------------------------------------ */

typedef struct {
    int threads;
    double scale;
    const char *mode;
} bench_args;

static inline bench_args bench_parse(int argc, char **argv, const char *name, const char *modes) {
    bench_name = name;
    bench_args a = {1, 1.0, NULL};
    if (argc < 3 || argc > 4 || (modes && argc != 4) || (!modes && argc != 3)) {
        fprintf(stderr, "usage: %s THREADS SCALE%s%s\n", argv[0], modes ? " " : "",
                modes ? modes : "");
        exit(2);
    }
    a.threads = atoi(argv[1]);
    a.scale = strtod(argv[2], NULL);
    if (a.threads < 1 || a.threads > 1024 || !(a.scale > 0.0) || a.scale > 1000.0) {
        fprintf(stderr, "%s: bad THREADS or SCALE\n", name);
        exit(2);
    }
    if (modes)
        a.mode = argv[3];
    return a;
}

/* base * scale, at least 1. */
static inline uint64_t scaled(uint64_t base, double scale) {
    double v = (double)base * scale;
    return v < 1.0 ? 1 : (uint64_t)v;
}

static inline void print_checksum(uint64_t h) {
    printf("checksum %016llx\n", (unsigned long long)h);
}

/* --- memory ----------------------------------------------------------------------------- */

static inline void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p)
        FAIL("malloc(%zu) returned NULL", n);
    return p;
}

static inline void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q)
        FAIL("realloc(%zu) returned NULL", n);
    return q;
}

static inline uint64_t load64(const void *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void store64(void *p, uint64_t v) { memcpy(p, &v, 8); }

/* A stamp on a block of n >= 16 bytes: its size and a 32-bit tag in the first word, a word
 * derived from both in the last 8 bytes. A freeing thread that knows nothing else about the
 * block can verify it. */
static inline uint64_t tail_word(uint64_t head) {
    return (head * 0x9e3779b97f4a7c15ULL) ^ 0xa5a5a5a5a5a5a5a5ULL;
}

static inline void stamp_block(void *p, uint64_t size, uint64_t tag) {
    uint64_t head = (size & 0xffffffffULL) | (tag << 32);
    store64(p, head);
    store64((char *)p + size - 8, tail_word(head));
}

/* Verifies a stamped block of a size in [lo, hi]; returns its size. */
static inline uint64_t check_block(const void *p, uint64_t lo, uint64_t hi) {
    uint64_t head = load64(p);
    uint64_t size = head & 0xffffffffULL;
    if (size < lo || size > hi || size < 16)
        FAIL("block %p: stamped size %llu out of range (corrupted)", p, (unsigned long long)size);
    if (load64((const char *)p + size - 8) != tail_word(head))
        FAIL("block %p of %llu bytes: tail stamp corrupted", p, (unsigned long long)size);
    return size;
}

/* Stamp of a block known by its owner (size kept outside): the first 8 bytes (n >= 8), the
 * last 8 bytes (n >= 16), and one byte per 4 KiB so that every page is really used. */
static inline void touch_block(void *p, size_t n, uint64_t tag) {
    char *c = p;
    for (size_t off = 4096; off + 8 < n; off += 4096)
        c[off] = (char)(tag >> 8);
    store64(c, tag);
    if (n >= 16)
        store64(c + n - 8, ~tag);
}

static inline void check_touched(const void *p, size_t n, uint64_t tag) {
    const char *c = p;
    if (load64(c) != tag || (n >= 16 && load64(c + n - 8) != ~tag))
        FAIL("block %p of %zu bytes: stamp corrupted", p, n);
    for (size_t off = 4096; off + 8 < n; off += 4096)
        if (c[off] != (char)(tag >> 8))
            FAIL("block %p of %zu bytes: byte at %zu corrupted", p, n, off);
}

/* --- ledgers: blocks that change hands -------------------------------------------------- */

/* Where a block is freed by whichever thread happens to hold it, what each thread frees
 * depends on the schedule; only the totals do not. Each thread keeps a ledger of the stamped
 * blocks it allocated and freed; at the end main adds them up and checks that every block
 * allocated was freed exactly once, intact (the sums do not depend on the order). These
 * schedule-dependent figures never go into the checksum. */
typedef struct {
    uint64_t allocated, freed;    /* blocks */
    uint64_t alloc_sum, free_sum; /* sums of a hash of each block's stamp */
} ledger;

static inline void *ledger_malloc(ledger *l, uint64_t size, uint64_t tag) {
    void *p = xmalloc(size);
    stamp_block(p, size, tag);
    l->allocated++;
    l->alloc_sum += tail_word(load64(p));
    return p;
}

/* Verifies (its size must be in [lo, hi]) and frees a block that ledger_malloc stamped on
 * any thread. */
static inline void ledger_free(ledger *l, void *p, uint64_t lo, uint64_t hi) {
    check_block(p, lo, hi);
    l->freed++;
    l->free_sum += tail_word(load64(p));
    free(p);
}

static inline void ledger_add(ledger *total, const ledger *l) {
    total->allocated += l->allocated;
    total->freed += l->freed;
    total->alloc_sum += l->alloc_sum;
    total->free_sum += l->free_sum;
}

static inline void ledger_check(const ledger *total) {
    if (total->allocated != total->freed || total->alloc_sum != total->free_sum)
        FAIL("blocks lost or freed twice: %llu allocated, %llu freed",
             (unsigned long long)total->allocated, (unsigned long long)total->freed);
}

/* --- mailboxes: batches of blocks handed to another thread ------------------------------ */

/* A batch is one malloc'd array that the sender fills and pushes to the receiver's mailbox;
 * the receiver takes every waiting batch at once and frees them and their blocks. Taking
 * all (an exchange, never a pop of one) keeps the stack free of the ABA problem.
 *
 * The sender must be held back: the thread that lags behind also has the most batches to
 * free, so it falls further behind, and the batches sent to it pile up to most of the run.
 * So a receiver publishes how many steps (cycles, rounds) it has started, and a sender that
 * is `limit` steps ahead of its receiver sleeps until it is only limit / 2 ahead (or the
 * receiver has finished and closed its mailbox; main frees what is left in closed
 * mailboxes). Each mailbox has one sender. In a ring of threads that each send to the next,
 * not every thread can be ahead of the next one, so the waits cannot deadlock. (Sleeping,
 * not spinning: with more threads than cores a spinning sender would take the core from the
 * very thread it waits for. Waking at limit / 2, not at every step, keeps a futex wake per
 * cycle out of the measurement.) */
typedef struct batch {
    struct batch *next;
    uint64_t count;
    void *blocks[];
} batch;

typedef struct {
    _Atomic(batch *) head;
    _Atomic uint64_t started; /* steps the receiver has started */
    _Atomic uint64_t wake_at; /* the sender sleeps until `started` reaches it (0: awake) */
    _Atomic int closed;       /* the receiver has finished */
    pthread_mutex_t lock;
    pthread_cond_t moved;
} mailbox;

static inline void mailbox_init(mailbox *m) {
    atomic_init(&m->head, NULL);
    atomic_init(&m->started, 0);
    atomic_init(&m->wake_at, 0);
    atomic_init(&m->closed, 0);
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->moved, NULL);
}

static inline batch *batch_new(uint64_t capacity) {
    batch *b = xmalloc(sizeof(batch) + sizeof(void *) * capacity);
    b->next = NULL;
    b->count = 0;
    return b;
}

static inline void mailbox_push(mailbox *m, batch *b) {
    batch *old = atomic_load_explicit(&m->head, memory_order_relaxed);
    do
        b->next = old;
    while (!atomic_compare_exchange_weak_explicit(&m->head, &old, b, memory_order_release,
                                                  memory_order_relaxed));
}

/* Every batch waiting, newest first (NULL if none). */
static inline batch *mailbox_take(mailbox *m) {
    return atomic_exchange_explicit(&m->head, NULL, memory_order_acquire);
}

/* All sequentially consistent: either the receiver sees the sender's wake_at, or the
 * sender sees the receiver's new step (or close) before it sleeps. */
static inline void mailbox_wake(mailbox *m) {
    pthread_mutex_lock(&m->lock);
    pthread_cond_broadcast(&m->moved);
    pthread_mutex_unlock(&m->lock);
}

/* The receiver has started step `step` (counted from 1). */
static inline void mailbox_started(mailbox *m, uint64_t step) {
    atomic_store(&m->started, step);
    uint64_t w = atomic_load(&m->wake_at);
    if (w && step >= w)
        mailbox_wake(m);
}

static inline void mailbox_close(mailbox *m) {
    atomic_store(&m->closed, 1);
    if (atomic_load(&m->wake_at))
        mailbox_wake(m);
}

/* The sender, in step `step`, waits if it is `limit` steps ahead of m's receiver. */
static inline void mailbox_wait(mailbox *m, uint64_t step, uint64_t limit) {
    if (step < atomic_load(&m->started) + limit || atomic_load(&m->closed))
        return;
    uint64_t until = step - limit / 2;
    pthread_mutex_lock(&m->lock);
    atomic_store(&m->wake_at, until);
    while (atomic_load(&m->started) < until && !atomic_load(&m->closed))
        pthread_cond_wait(&m->moved, &m->lock);
    atomic_store(&m->wake_at, 0);
    pthread_mutex_unlock(&m->lock);
}

/* --- threads ---------------------------------------------------------------------------- */

static inline void run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size) {
    pthread_t *t = xmalloc(sizeof(pthread_t) * (size_t)n);
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * arg_size) != 0)
            FAIL("pthread_create failed");
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
}

#endif
