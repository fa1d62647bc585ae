/*
 * threads_exchange.c - blocks allocated by one thread and freed by another.
 *
 * NTHREADS threads each send MSGS blocks of random sizes to the other
 * threads through unbounded mutex/condvar queues (the queue nodes are heap
 * blocks too, freed by the receiver). Every block carries a pattern derived
 * from its sender and sequence number; the receiver checks the pattern and
 * the alignment, then either frees the block, reallocs it and frees it, or
 * forwards it to a third thread (several hops), so a block is often freed by
 * a thread that did not allocate it and in a different size class than it
 * was born in. The totals printed at the end are deterministic.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 6
#define MSGS 25000

struct msg {
    struct msg *next;
    unsigned char *block;
    size_t size;
    uint32_t seed;
    int hops_left;
};

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct msg *head, *tail;
};

static struct queue queues[NTHREADS];
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static long done_count; /* messages whose block has been freed */
static int all_done;
static int failed;

/* per-thread totals, summed by main (the sums are deterministic: every
 * message is received hops+1 times, whoever receives it) */
static uint64_t sent_bytes[NTHREADS];
static uint64_t recv_checksum[NTHREADS];

static uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static size_t pick_size(uint64_t r)
{
    switch (r % 16) {
    case 0: return (r >> 8) % 16;
    case 1: case 2: case 3: case 4: case 5: case 6: return 16 + (r >> 8) % 256;
    case 7: case 8: case 9: case 10: return (r >> 8) % 4096;
    case 11: case 12: case 13: return (r >> 8) % 40000;
    case 14: return (r >> 8) % 300000;
    default: return (r >> 8) % 1500000 + (r % 7 == 0 ? 4u << 20 : 0);
    }
}

static unsigned char pat(size_t i, uint32_t seed) { return (unsigned char)(seed + i * 7 + (i >> 9)); }

/* Blocks up to 16 KiB are filled and checked entirely; for bigger ones
 * only the first and last 4 KiB and every 509th byte in between (each page
 * is still touched), to keep the run short. check() looks at the bytes of
 * an n-byte fill that lie below limit (limit < n after a shrinking realloc). */
static void fill(unsigned char *b, size_t n, uint32_t seed)
{
    if (n <= 16384) {
        for (size_t i = 0; i < n; i++)
            b[i] = pat(i, seed);
        return;
    }
    for (size_t i = 0; i < 4096; i++)
        b[i] = pat(i, seed);
    for (size_t i = 4096; i < n - 4096; i += 509)
        b[i] = pat(i, seed);
    for (size_t i = n - 4096; i < n; i++)
        b[i] = pat(i, seed);
}

static int check(const unsigned char *b, size_t n, size_t limit, uint32_t seed, size_t *bad)
{
    size_t i;
    if (n <= 16384) {
        for (i = 0; i < limit; i++)
            if (b[i] != pat(i, seed))
                goto wrong;
        return 1;
    }
    for (i = 0; i < 4096 && i < limit; i++)
        if (b[i] != pat(i, seed))
            goto wrong;
    for (i = 4096; i < n - 4096 && i < limit; i += 509)
        if (b[i] != pat(i, seed))
            goto wrong;
    for (i = n - 4096; i < limit; i++)
        if (b[i] != pat(i, seed))
            goto wrong;
    return 1;
wrong:
    *bad = i;
    return 0;
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    static int reported;
    __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
    if (__atomic_fetch_add(&reported, 1, __ATOMIC_RELAXED) >= 20)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void push(int to, struct msg *m)
{
    struct queue *q = &queues[to];
    m->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

/* Takes the whole queue. If wait is set, blocks until something arrives or
 * everything is done. */
static struct msg *take_all(int me, int wait)
{
    struct queue *q = &queues[me];
    pthread_mutex_lock(&q->lock);
    while (wait && q->head == NULL && !__atomic_load_n(&all_done, __ATOMIC_ACQUIRE))
        pthread_cond_wait(&q->cond, &q->lock);
    struct msg *m = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    return m;
}

static void finished_one(void)
{
    pthread_mutex_lock(&done_lock);
    long d = ++done_count;
    pthread_mutex_unlock(&done_lock);
    if (d == (long)NTHREADS * MSGS) {
        __atomic_store_n(&all_done, 1, __ATOMIC_RELEASE);
        for (int i = 0; i < NTHREADS; i++) {
            pthread_mutex_lock(&queues[i].lock);
            pthread_cond_broadcast(&queues[i].cond);
            pthread_mutex_unlock(&queues[i].lock);
        }
    }
}

static void handle(int me, struct msg *m, uint64_t *rng)
{
    size_t bad = 0;
    if (((uintptr_t)m->block & 15) != 0)
        report("FAIL threads_exchange: block %p of %zu bytes not 16-aligned\n", (void *)m->block, m->size);
    if (!check(m->block, m->size, m->size, m->seed, &bad))
        report("FAIL threads_exchange: thread %d: block %p (%zu bytes, seed %u) corrupted at byte %zu\n", me,
               (void *)m->block, m->size, m->seed, bad);
    recv_checksum[me] += m->size * 31 + m->seed;
    if (m->hops_left > 0) {
        m->hops_left--;
        int to = (int)((me + 1 + xs(rng) % (NTHREADS - 1)) % NTHREADS);
        push(to, m); /* forwarded: node and block travel on */
        return;
    }
    uint64_t r = xs(rng);
    if (r % 4 == 0) {
        /* cross-thread realloc, then free */
        size_t n2 = pick_size(r >> 3);
        unsigned char *b2 = realloc(m->block, n2);
        if (b2 == NULL && n2 != 0) {
            report("FAIL threads_exchange: realloc(%zu) failed\n", n2);
            free(m->block);
        } else {
            size_t keep = n2 < m->size ? n2 : m->size;
            if (((uintptr_t)b2 & 15) != 0)
                report("FAIL threads_exchange: realloc(%zu) = %p not 16-aligned\n", n2, (void *)b2);
            if (!check(b2, m->size, keep, m->seed, &bad))
                report("FAIL threads_exchange: realloc %zu -> %zu lost contents at %zu\n", m->size, n2, bad);
            if (n2)
                memset(b2, 0xEE, n2);
            free(b2);
        }
    } else {
        free(m->block);
    }
    free(m);
    finished_one();
}

static void drain(int me, struct msg *m, uint64_t *rng)
{
    while (m) {
        struct msg *next = m->next;
        handle(me, m, rng);
        m = next;
    }
}

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint64_t send_rng = 0x1234567ull + (uint64_t)me * 0x9E3779B97F4A7C15ull;
    uint64_t recv_rng = 0x7654321ull + (uint64_t)me * 0xC2B2AE3D27D4EB4Full;
    for (int i = 0; i < MSGS; i++) {
        uint64_t r = xs(&send_rng);
        struct msg *m = malloc(sizeof *m);
        if (m == NULL) {
            fprintf(stderr, "FAIL threads_exchange: malloc(msg) failed\n");
            exit(1);
        }
        m->size = pick_size(r);
        m->seed = (uint32_t)(me * 1000003 + i);
        m->hops_left = (int)((r >> 40) % 3);
        m->block = malloc(m->size);
        if (m->block == NULL) {
            fprintf(stderr, "FAIL threads_exchange: malloc(%zu) failed\n", m->size);
            exit(1);
        }
        fill(m->block, m->size, m->seed);
        sent_bytes[me] += m->size;
        int to = (int)((me + 1 + (r >> 48) % (NTHREADS - 1)) % NTHREADS);
        push(to, m);
        if (i % 8 == 0)
            drain(me, take_all(me, 0), &recv_rng);
    }
    while (!__atomic_load_n(&all_done, __ATOMIC_ACQUIRE))
        drain(me, take_all(me, 1), &recv_rng);
    drain(me, take_all(me, 0), &recv_rng);
    return NULL;
}

int main(void)
{
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        pthread_mutex_init(&queues[i].lock, NULL);
        pthread_cond_init(&queues[i].cond, NULL);
    }
    for (int i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) != 0) {
            fprintf(stderr, "FAIL threads_exchange: pthread_create failed\n");
            return 1;
        }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    uint64_t bytes = 0;
    for (int i = 0; i < NTHREADS; i++)
        bytes += sent_bytes[i];
    if (done_count != (long)NTHREADS * MSGS) {
        fprintf(stderr, "FAIL threads_exchange: %ld of %ld messages completed\n", done_count, (long)NTHREADS * MSGS);
        return 1;
    }
    if (failed)
        return 1;
    uint64_t sum = 0;
    for (int i = 0; i < NTHREADS; i++)
        sum += recv_checksum[i];
    printf("messages=%ld bytes=%llu checksum=%llu\n", done_count, (unsigned long long)bytes,
           (unsigned long long)sum);
    printf("ok\n");
    return 0;
}
