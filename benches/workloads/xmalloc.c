/* xmalloc: producer/consumer in the style of xmalloc-test.
 *
 * THREADS producer threads allocate blocks (16..512 bytes) in batches of BATCH and hand each
 * batch to a shared bounded queue; THREADS consumer threads take batches, verify and free
 * every block. Every block (and every batch array) is freed by another thread than the one
 * that allocated it, which is the pattern that makes per-thread caches bleed memory or
 * contend. With THREADS = 1 there is one producer and one consumer.
 */
#include "bench.h"

#define MIN_SIZE 16
#define MAX_SIZE 512
#define BATCH 256
#define QUEUE_CAP 64
#define BLOCKS_PER_PRODUCER 5000000ULL /* at SCALE 1 */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    void **items[QUEUE_CAP];
    unsigned head, count;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0};

static void push(void **b) {
    pthread_mutex_lock(&q.lock);
    while (q.count == QUEUE_CAP)
        pthread_cond_wait(&q.not_full, &q.lock);
    q.items[(q.head + q.count) % QUEUE_CAP] = b;
    q.count++;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
}

static void **pop(void) {
    pthread_mutex_lock(&q.lock);
    while (q.count == 0)
        pthread_cond_wait(&q.not_empty, &q.lock);
    void **b = q.items[q.head];
    q.head = (q.head + 1) % QUEUE_CAP;
    q.count--;
    pthread_cond_signal(&q.not_full);
    pthread_mutex_unlock(&q.lock);
    return b;
}

typedef struct {
    int id;
    uint64_t blocks;
    uint64_t result; /* producer: stream hash; consumer: order-free sum over its blocks */
    uint64_t freed;
} worker;

static void *produce(void *arg) {
    worker *w = arg;
    rng_t r;
    rng_seed(&r, seed_for(1, (uint64_t)w->id));
    uint64_t h = 0;
    for (uint64_t done = 0; done < w->blocks;) {
        uint64_t n = w->blocks - done < BATCH ? w->blocks - done : BATCH;
        void **b = xmalloc(sizeof(void *) * (BATCH + 1));
        for (uint64_t i = 0; i < n; i++) {
            uint64_t size = rng_range(&r, MIN_SIZE, MAX_SIZE);
            uint64_t tag = rng_next(&r) >> 32;
            b[i] = xmalloc(size);
            stamp_block(b[i], size, tag);
            h += size * 31 + tag;
        }
        b[n] = NULL;
        push(b);
        done += n;
    }
    w->result = h;
    return NULL;
}

static void *consume(void *arg) {
    worker *w = arg;
    uint64_t sum = 0, freed = 0;
    for (;;) {
        void **b = pop();
        if (!b)
            break;
        for (void **p = b; *p; p++) {
            uint64_t size = check_block(*p, MIN_SIZE, MAX_SIZE);
            sum += size * 31 + (load64(*p) >> 32);
            free(*p);
            freed++;
        }
        free(b);
    }
    w->result = sum;
    w->freed = freed;
    return NULL;
}

static void *role(void *arg) {
    worker *w = arg;
    return w->id >= 0 ? produce(w) : consume(w);
}

int main(int argc, char **argv) {
    bench_args a = bench_parse(argc, argv, "xmalloc", NULL);
    int n = a.threads;
    uint64_t blocks = scaled(BLOCKS_PER_PRODUCER, a.scale);
    worker *w = xmalloc(sizeof(worker) * (size_t)(2 * n));
    pthread_t *t = xmalloc(sizeof(pthread_t) * (size_t)(2 * n));
    for (int i = 0; i < 2 * n; i++) {
        w[i] = (worker){.id = i < n ? i : -1, .blocks = blocks};
        if (pthread_create(&t[i], NULL, role, &w[i]) != 0)
            FAIL("pthread_create failed");
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < n; i++)
        push(NULL); /* one end marker per consumer */
    uint64_t produced = 0, consumed = 0, freed = 0;
    for (int i = n; i < 2 * n; i++)
        pthread_join(t[i], NULL);
    uint64_t h = 0;
    for (int i = 0; i < n; i++) {
        h = mix(h, w[i].result);
        produced += w[i].result;
    }
    for (int i = n; i < 2 * n; i++) {
        consumed += w[i].result;
        freed += w[i].freed;
    }
    /* Every block produced was consumed exactly once and intact. */
    if (produced != consumed || freed != blocks * (uint64_t)n)
        FAIL("blocks lost or duplicated: %llu freed of %llu", (unsigned long long)freed,
             (unsigned long long)(blocks * (uint64_t)n));
    free(t);
    free(w);
    print_checksum(mix(h, freed));
    return 0;
}
