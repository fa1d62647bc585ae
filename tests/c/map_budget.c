/*
 * map_budget.c - guards must not eat the mapping budget.
 *
 * Linux caps a process at vm.max_map_count mappings. A guard page made with
 * mprotect splits a mapping, so an allocator with a guard on each side of
 * every large block needs two or three mappings per block. This program
 * keeps NBLOCKS large blocks (256 KiB .. 2 MiB, most above the largest size
 * class) alive at once, then runs NTHREADS threads that each keep their own
 * set of large and small blocks alive while churning, and checks at each
 * peak that /proc/self/maps has fewer lines than a quarter of
 * vm.max_map_count. It prints the counts it saw ("maps: ..." on stderr).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBLOCKS 10000
#define NTHREADS 4
#define PER_THREAD 1500

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -1;
    long lines = 0;
    int c;
    while ((c = getc(f)) != EOF)
        lines += c == '\n';
    fclose(f);
    return lines;
}

static long read_max_map_count(void)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    long v = -1;
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* 256 KiB .. 2 MiB, not page-multiples. */
static size_t large_size(uint64_t *s)
{
    return (256u << 10) + (size_t)(rng(s) % ((2u << 20) - (256u << 10))) + (size_t)(rng(s) % 4096);
}

static int fill_check(unsigned char *p, size_t n, unsigned char tag, int check)
{
    if (check)
        return p[0] == tag && p[n / 2] == (unsigned char)(tag + 1) && p[n - 1] == (unsigned char)(tag + 2);
    p[0] = tag;
    p[n / 2] = (unsigned char)(tag + 1);
    p[n - 1] = (unsigned char)(tag + 2);
    return 1;
}

static pthread_barrier_t at_peak, counted;
static volatile int failed;

static void *worker(void *arg)
{
    uint64_t s = 0x9E3779B97F4A7C15ull * (uintptr_t)(arg + 1);
    static __thread unsigned char *blocks[PER_THREAD];
    static __thread size_t sizes[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        sizes[i] = i % 3 == 0 ? large_size(&s) : 16 + rng(&s) % 20000;
        blocks[i] = malloc(sizes[i]);
        if (blocks[i] == NULL) {
            fprintf(stderr, "FAIL map_budget: thread malloc(%zu) returned NULL\n", sizes[i]);
            failed = 1;
            break;
        }
        fill_check(blocks[i], sizes[i], (unsigned char)i, 0);
    }
    /* Churn: replace random blocks, realloc some (mremap of large blocks). */
    for (int r = 0; r < 20000 && !failed; r++) {
        int i = (int)(rng(&s) % PER_THREAD);
        if (!fill_check(blocks[i], sizes[i], (unsigned char)i, 1)) {
            fprintf(stderr, "FAIL map_budget: block corrupted\n");
            failed = 1;
            break;
        }
        if (r % 4 == 0) {
            size_t n = sizes[i] + sizes[i] / 2 + 4096;
            unsigned char *q = realloc(blocks[i], n);
            if (q == NULL) {
                failed = 1;
                break;
            }
            blocks[i] = q;
            sizes[i] = n > (4u << 20) ? sizes[i] : n;
            if (n > (4u << 20)) {
                q = realloc(q, sizes[i]);
                if (q == NULL) {
                    failed = 1;
                    break;
                }
                blocks[i] = q;
            }
        } else {
            free(blocks[i]);
            sizes[i] = r % 3 == 0 ? large_size(&s) : 16 + rng(&s) % 20000;
            blocks[i] = malloc(sizes[i]);
            if (blocks[i] == NULL) {
                failed = 1;
                break;
            }
        }
        fill_check(blocks[i], sizes[i], (unsigned char)i, 0);
    }
    pthread_barrier_wait(&at_peak);
    pthread_barrier_wait(&counted);
    for (int i = 0; i < PER_THREAD; i++)
        free(blocks[i]);
    return NULL;
}

int main(void)
{
    long max = read_max_map_count();
    if (max <= 0) {
        fprintf(stderr, "FAIL map_budget: cannot read /proc/sys/vm/max_map_count\n");
        return 1;
    }
    long budget = max / 4, before = count_maps();
    static unsigned char *p[NBLOCKS];
    static size_t n[NBLOCKS];
    uint64_t s = 12345;
    for (int i = 0; i < NBLOCKS; i++) {
        n[i] = large_size(&s);
        p[i] = malloc(n[i]);
        if (p[i] == NULL) {
            fprintf(stderr, "FAIL map_budget: malloc(%zu) number %d returned NULL (maps: %ld)\n", n[i], i,
                    count_maps());
            return 1;
        }
        fill_check(p[i], n[i], (unsigned char)i, 0);
    }
    long large_peak = count_maps();
    fprintf(stderr, "maps: before %ld, with %d live large blocks %ld, budget %ld (max_map_count %ld)\n", before,
            NBLOCKS, large_peak, budget, max);
    int ok = 1;
    if (large_peak >= budget) {
        fprintf(stderr, "FAIL map_budget: %ld mappings with %d large blocks, budget %ld\n", large_peak, NBLOCKS,
                budget);
        ok = 0;
    }
    for (int i = 0; i < NBLOCKS; i++)
        if (!fill_check(p[i], n[i], (unsigned char)i, 1)) {
            fprintf(stderr, "FAIL map_budget: block %d corrupted\n", i);
            return 1;
        }

    pthread_t t[NTHREADS];
    pthread_barrier_init(&at_peak, NULL, NTHREADS + 1);
    pthread_barrier_init(&counted, NULL, NTHREADS + 1);
    for (long i = 0; i < NTHREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    pthread_barrier_wait(&at_peak);
    long threads_peak = count_maps();
    pthread_barrier_wait(&counted);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    fprintf(stderr, "maps: with %d threads churning on top %ld\n", NTHREADS, threads_peak);
    if (failed)
        return 1;
    if (threads_peak >= budget) {
        fprintf(stderr, "FAIL map_budget: %ld mappings with %d threads on top of %d large blocks, budget %ld\n",
                threads_peak, NTHREADS, NBLOCKS, budget);
        ok = 0;
    }
    for (int i = 0; i < NBLOCKS; i++)
        free(p[i]);
    if (!ok)
        return 1;
    printf("ok\n");
    return 0;
}
