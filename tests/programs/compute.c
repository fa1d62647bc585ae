/* A small program compiled by gcc under LD_PRELOAD (cc1, as and ld all run
 * with the allocator under test), then run; its output is compared with
 * the same steps done without the preload. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_PRIMES 200000
#define TABLE 4096

struct entry {
    char *key;
    unsigned count;
    struct entry *next;
};

static uint64_t state = 0x853c49e6748fea9bULL;
static uint32_t next_rand(void)
{
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    uint32_t x = (uint32_t)(((state >> 18) ^ state) >> 27);
    uint32_t rot = (uint32_t)(state >> 59);
    return (x >> rot) | (x << ((32 - rot) & 31));
}

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static inline uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

int main(void)
{
    /* sieve */
    char *composite = calloc(N_PRIMES + 1, 1);
    unsigned nprimes = 0;
    uint64_t psum = 0;
    for (unsigned i = 2; i <= N_PRIMES; i++) {
        if (composite[i])
            continue;
        nprimes++;
        psum += i;
        for (unsigned j = i * 2; j <= N_PRIMES; j += i)
            composite[j] = 1;
    }
    free(composite);
    printf("primes below %d: %u, sum %llu\n", N_PRIMES, nprimes, (unsigned long long)psum);

    /* sort */
    size_t n = 100000;
    uint32_t *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = next_rand();
    qsort(v, n, sizeof *v, cmp_u32);
    printf("sorted: min %u median %u max %u\n", v[0], v[n / 2], v[n - 1]);
    free(v);

    /* hash table of words */
    struct entry *table[TABLE] = {0};
    char word[32];
    unsigned distinct = 0;
    for (int i = 0; i < 50000; i++) {
        snprintf(word, sizeof word, "w%u", next_rand() % 7000);
        unsigned h = hash(word) % TABLE;
        struct entry *e = table[h];
        while (e && strcmp(e->key, word) != 0)
            e = e->next;
        if (!e) {
            e = malloc(sizeof *e);
            e->key = strdup(word);
            e->count = 0;
            e->next = table[h];
            table[h] = e;
            distinct++;
        }
        e->count++;
    }
    unsigned maxc = 0;
    for (int i = 0; i < TABLE; i++)
        for (struct entry *e = table[i], *nx; e; e = nx) {
            nx = e->next;
            if (e->count > maxc)
                maxc = e->count;
            free(e->key);
            free(e);
        }
    printf("words: %u distinct, max count %u\n", distinct, maxc);

    /* arithmetic */
    uint64_t g = 0;
    for (uint64_t a = 1; a < 3000; a++)
        g += gcd(a * 7919, 1000000007ULL % (a + 1) + a);
    printf("gcd sum %llu\n", (unsigned long long)g);
    return 0;
}
