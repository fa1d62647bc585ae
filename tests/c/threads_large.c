/*
 * threads_large.c - large blocks (64 KiB .. 8 MiB) allocated, grown,
 * shrunk and freed by several threads at once, through shared slots, so
 * most blocks are freed or realloc'd by a thread that did not allocate
 * them. Each block's first and last 4 KiB and one byte in every 64 KiB are
 * filled with a pattern derived from the block's identity and checked
 * before it is touched again; a block handed out twice or unmapped while
 * live shows up as a corrupted pattern or a crash, and a NULL return
 * (there is plenty of memory) as a failure.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 4
#define NSLOTS 96
#define ITERATIONS 12000

struct slot {
    pthread_mutex_t lock;
    unsigned char *p;
    size_t n;
    uint32_t id;
};

static struct slot slots[NSLOTS];
static int failed;

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

static uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* log-uniform between 64 KiB and 4 MiB, plus an odd remainder */
static size_t pick_size(uint64_t r)
{
    size_t base = (size_t)1 << (16 + r % 7);
    return base + (size_t)((r >> 8) % base) + (size_t)((r >> 40) % 61);
}

static unsigned char pat(size_t i, uint32_t id) { return (unsigned char)(id * 2654435761u + i * 3 + (i >> 12)); }

/* visit the checked positions of an n-byte block that lie below limit */
#define FOR_CHECKED(i, n, limit)                                               \
    for (size_t i = 0, end_ = (limit) < (n) ? (limit) : (n); i < end_;         \
         i = (i < 4096 || i + 4096 >= (n)) ? i + 1 : ((i + 65536 < (n) - 4096) ? i + 65536 : (n) - 4096))

static void fill(unsigned char *p, size_t n, uint32_t id)
{
    FOR_CHECKED(i, n, n)
        p[i] = pat(i, id);
}

static int check(const unsigned char *p, size_t n, size_t limit, uint32_t id, size_t *bad)
{
    FOR_CHECKED(i, n, limit)
        if (p[i] != pat(i, id)) {
            *bad = i;
            return 0;
        }
    return 1;
}

static void *worker(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0xB16B00B5ull + me * 0x9E3779B97F4A7C15ull;
    for (uint32_t it = 0; it < ITERATIONS; it++) {
        uint64_t r = xs(&rng);
        struct slot *s = &slots[r % NSLOTS];
        size_t bad = 0;
        pthread_mutex_lock(&s->lock);
        if (s->p == NULL) {
            s->n = pick_size(r >> 7);
            s->id = me << 24 | it;
            s->p = malloc(s->n);
            if (s->p == NULL)
                report("FAIL threads_large: malloc(%zu) returned NULL\n", s->n);
            else if (((uintptr_t)s->p & 15) != 0)
                report("FAIL threads_large: malloc(%zu) = %p not 16-aligned\n", s->n, (void *)s->p);
            else
                fill(s->p, s->n, s->id);
        } else {
            if (!check(s->p, s->n, s->n, s->id, &bad))
                report("FAIL threads_large: block %p (%zu bytes) corrupted at byte %zu\n", (void *)s->p, s->n, bad);
            if ((r >> 50) % 3 == 0) {
                size_t n2 = pick_size(r >> 13);
                unsigned char *p2 = realloc(s->p, n2);
                if (p2 == NULL) {
                    report("FAIL threads_large: realloc(%zu -> %zu) returned NULL\n", s->n, n2);
                } else {
                    if (!check(p2, s->n, n2, s->id, &bad))
                        report("FAIL threads_large: realloc %zu -> %zu lost contents at byte %zu\n", s->n, n2, bad);
                    s->p = p2;
                    s->n = n2;
                    s->id = me << 24 | it;
                    fill(s->p, s->n, s->id);
                }
            } else {
                free(s->p);
                s->p = NULL;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

int main(void)
{
    for (int i = 0; i < NSLOTS; i++)
        pthread_mutex_init(&slots[i].lock, NULL);
    pthread_t t[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0) {
            fprintf(stderr, "FAIL threads_large: pthread_create failed\n");
            return 1;
        }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < NSLOTS; i++) {
        size_t bad = 0;
        if (slots[i].p && !check(slots[i].p, slots[i].n, slots[i].n, slots[i].id, &bad))
            report("FAIL threads_large: block %p corrupted at byte %zu\n", (void *)slots[i].p, bad);
        free(slots[i].p);
    }
    if (failed)
        return 1;
    printf("ok\n");
    return 0;
}
