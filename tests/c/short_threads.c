/*
 * short_threads.c - many short-lived threads; memory outlives its thread.
 *
 * NTHREADS threads run in waves of WAVE. Each thread allocates BLOCKS
 * blocks of random sizes and fills them with a pattern; it frees about a
 * third itself and leaves the rest: most are freed by main after the thread
 * has been joined (so after its heap was torn down), some by a thread of
 * the next wave, and some stay alive until the very end. Every thread also
 * stores a heap block in each of NKEYS pthread keys (more than 32 keys, so
 * that glibc itself allocates inside pthread_setspecific); the key
 * destructors check and free those blocks and allocate again during thread
 * teardown. One thread in five is detached instead of joined.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 300
#define WAVE 10
#define BLOCKS 400
#define NKEYS 40

struct block {
    unsigned char *p;
    size_t n;
    uint32_t seed;
};

struct thread_data {
    int id;
    int detached;
    struct block left[BLOCKS]; /* blocks left for others; p == NULL if none */
    int nleft;
    struct block *inherit;     /* blocks of a previous thread to free */
    int ninherit;
};

static pthread_key_t keys[NKEYS];
static int dtor_runs[NTHREADS];
static int failed;
static sem_t detached_done;
static struct thread_data data[NTHREADS];

static void fail(const char *what, int id, size_t n, size_t at)
{
    static int reported;
    __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
    if (__atomic_fetch_add(&reported, 1, __ATOMIC_RELAXED) < 20)
        fprintf(stderr, "FAIL short_threads: %s (thread %d, %zu bytes, byte %zu)\n", what, id, n, at);
}

static uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static unsigned char pat(size_t i, uint32_t seed) { return (unsigned char)(seed * 13 + i * 5 + (i >> 7)); }

static void fill(struct block *b)
{
    for (size_t i = 0; i < b->n; i++)
        b->p[i] = pat(i, b->seed);
}

static void check_and_free(struct block *b, int id)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->p[i] != pat(i, b->seed)) {
            fail("block corrupted", id, b->n, i);
            break;
        }
    free(b->p);
    b->p = NULL;
}

struct key_value {
    int thread;
    int key;
    uint32_t magic;
    unsigned char payload[200];
};

static void key_destructor(void *v)
{
    struct key_value *kv = v;
    if (kv->magic != 0xC0FFEEu + (uint32_t)kv->key)
        fail("key value corrupted", kv->thread, sizeof *kv, 0);
    for (size_t i = 0; i < sizeof kv->payload; i++)
        if (kv->payload[i] != (unsigned char)(kv->thread + kv->key + i)) {
            fail("key payload corrupted", kv->thread, sizeof kv->payload, i);
            break;
        }
    /* allocate during teardown too */
    char *tmp = malloc(64 + (size_t)kv->key * 100);
    if (tmp == NULL) {
        fail("malloc in key destructor failed", kv->thread, 0, 0);
    } else {
        memset(tmp, 1, 64);
        tmp = realloc(tmp, 5000);
        if (tmp == NULL)
            fail("realloc in key destructor failed", kv->thread, 5000, 0);
        free(tmp);
    }
    __atomic_fetch_add(&dtor_runs[kv->thread], 1, __ATOMIC_RELAXED);
    free(kv);
}

static __thread void *tls_block;

static void *thread_main(void *arg)
{
    struct thread_data *d = arg;
    uint64_t rng = 0xABCDEF12345ull ^ ((uint64_t)d->id * 0x9E3779B97F4A7C15ull);
    struct block mine[BLOCKS];

    tls_block = malloc(1000);
    if (tls_block == NULL)
        fail("malloc failed", d->id, 1000, 0);

    for (int k = 0; k < NKEYS; k++) {
        struct key_value *kv = malloc(sizeof *kv);
        if (kv == NULL) {
            fail("malloc failed", d->id, sizeof *kv, 0);
            continue;
        }
        kv->thread = d->id;
        kv->key = k;
        kv->magic = 0xC0FFEEu + (uint32_t)k;
        for (size_t i = 0; i < sizeof kv->payload; i++)
            kv->payload[i] = (unsigned char)(d->id + k + i);
        if (pthread_setspecific(keys[k], kv) != 0)
            fail("pthread_setspecific failed", d->id, 0, 0);
    }

    for (int i = 0; i < BLOCKS; i++) {
        uint64_t r = xs(&rng);
        size_t n;
        switch (r % 10) {
        case 0: n = (r >> 8) % 8; break;
        case 1: case 2: case 3: case 4: n = (r >> 8) % 200; break;
        case 5: case 6: case 7: n = (r >> 8) % 3000; break;
        case 8: n = (r >> 8) % 40000; break;
        default: n = (r >> 8) % 300000; break;
        }
        mine[i].n = n;
        mine[i].seed = (uint32_t)(d->id * 7919 + i);
        mine[i].p = malloc(n);
        if (mine[i].p == NULL) {
            fail("malloc failed", d->id, n, 0);
            exit(1);
        }
        if (((uintptr_t)mine[i].p & 15) != 0)
            fail("block not 16-aligned", d->id, n, 0);
        fill(&mine[i]);
    }

    /* free the blocks a thread of the previous wave left for us */
    for (int i = 0; i < d->ninherit; i++)
        if (d->inherit[i].p)
            check_and_free(&d->inherit[i], d->id);

    /* free a third ourselves, newest first; leave the rest */
    d->nleft = 0;
    for (int i = BLOCKS - 1; i >= 0; i--) {
        if (i % 3 == 0)
            check_and_free(&mine[i], d->id);
        else
            d->left[d->nleft++] = mine[i];
    }

    memset(tls_block, 9, 1000);
    free(tls_block);
    tls_block = NULL;
    if (d->detached)
        sem_post(&detached_done);
    return NULL;
}

int main(void)
{
    for (int k = 0; k < NKEYS; k++)
        if (pthread_key_create(&keys[k], key_destructor) != 0) {
            fprintf(stderr, "FAIL short_threads: pthread_key_create failed\n");
            return 1;
        }
    sem_init(&detached_done, 0, 0);

    /* blocks that stay alive until the end (one from each thread) */
    struct block *survivors = calloc(NTHREADS, sizeof *survivors);
    int ndetached = 0;
    long blocks_freed_by_main = 0;

    for (int w = 0; w < NTHREADS; w += WAVE) {
        pthread_t t[WAVE];
        for (int j = 0; j < WAVE; j++) {
            int id = w + j;
            struct thread_data *d = &data[id];
            d->id = id;
            d->detached = id % 5 == 4;
            /* a third of the blocks of the thread with the same slot in the
             * previous wave are freed by this thread */
            if (w > 0 && !data[id - WAVE].detached) {
                d->inherit = data[id - WAVE].left;
                d->ninherit = data[id - WAVE].nleft / 3;
            }
            if (pthread_create(&t[j], NULL, thread_main, d) != 0) {
                fprintf(stderr, "FAIL short_threads: pthread_create failed\n");
                return 1;
            }
            if (d->detached) {
                pthread_detach(t[j]);
                ndetached++;
            }
        }
        for (int j = 0; j < WAVE; j++) {
            int id = w + j;
            if (data[id].detached)
                continue;
            pthread_join(t[j], NULL);
            if (dtor_runs[id] != NKEYS) {
                fprintf(stderr, "FAIL short_threads: thread %d ran %d of %d key destructors\n", id, dtor_runs[id],
                        NKEYS);
                failed = 1;
            }
        }
        /* the previous wave's joined threads: their inherited third was
         * freed by this wave; main frees the rest but keeps one survivor */
        if (w > 0) {
            for (int j = 0; j < WAVE; j++) {
                struct thread_data *prev = &data[w - WAVE + j];
                if (prev->detached)
                    continue;
                for (int i = prev->nleft / 3; i < prev->nleft; i++) {
                    if (i == prev->nleft - 1 && prev->left[i].p) {
                        survivors[prev->id] = prev->left[i];
                        continue;
                    }
                    if (prev->left[i].p) {
                        check_and_free(&prev->left[i], prev->id);
                        blocks_freed_by_main++;
                    }
                }
            }
        }
    }
    /* the last wave's joined threads */
    for (int id = NTHREADS - WAVE; id < NTHREADS; id++) {
        if (data[id].detached)
            continue;
        for (int i = 0; i < data[id].nleft; i++) {
            check_and_free(&data[id].left[i], id);
            blocks_freed_by_main++;
        }
    }
    /* detached threads: wait until each has finished its work (its teardown
     * may still be running while main frees its blocks) */
    for (int i = 0; i < ndetached; i++)
        sem_wait(&detached_done);
    for (int id = 0; id < NTHREADS; id++) {
        if (!data[id].detached)
            continue;
        for (int i = 0; i < data[id].nleft; i++) {
            check_and_free(&data[id].left[i], id);
            blocks_freed_by_main++;
        }
    }
    for (int id = 0; id < NTHREADS; id++)
        if (survivors[id].p)
            check_and_free(&survivors[id], id);
    free(survivors);

    if (failed)
        return 1;
    printf("threads=%d detached=%d freed_by_main=%ld\n", NTHREADS, ndetached, blocks_freed_by_main);
    printf("ok\n");
    return 0;
}
