/* realloc: chains of realloc from strings and vectors growing by appending.
 *
 * Strings: STRINGS strings grow by random chunks of 1..80 characters, each append a realloc
 * to the exact new length (as naive C string building does); at a random final length
 * between 64 bytes and 16 KiB the string's content is verified against a hash kept while
 * appending, and it is freed.
 * Vectors: VECTORS arrays of 64-bit values grow one element at a time with capacity doubling
 * (realloc when full, as std::vector or Vec do), up to a random length between 16 and 1 Mi
 * elements (8 MiB: the large-block path, where mremap helps), then are verified and freed.
 * One thread.
 */
#include "bench.h"

#define STRINGS 1000
#define VECTORS 64
#define APPENDS 6000000ULL /* string appends at SCALE 1 */
#define PUSHES 150000000ULL /* vector pushes at SCALE 1 */

typedef struct {
    char *s;
    size_t len, limit;
    uint64_t hash;
} string;

typedef struct {
    uint64_t *v;
    size_t len, cap, limit;
    uint64_t sum;
} vector;

static uint64_t fnv(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static void string_reset(string *s, rng_t *r) {
    s->s = NULL;
    s->len = 0;
    s->limit = (size_t)rng_log_range(r, 64, 16384);
    s->hash = 0xcbf29ce484222325ULL;
}

static void vector_reset(vector *v, rng_t *r) {
    v->v = NULL;
    v->len = v->cap = 0;
    v->limit = (size_t)rng_log_range(r, 16, 1 << 20);
    v->sum = 0;
}

int main(int argc, char **argv) {
    bench_args a = bench_parse(argc, argv, "realloc", NULL);
    rng_t r;
    rng_seed(&r, seed_for(5, 0));
    uint64_t h = 0, finished = 0;

    string *strs = xmalloc(sizeof(string) * STRINGS);
    for (int i = 0; i < STRINGS; i++)
        string_reset(&strs[i], &r);
    uint64_t appends = scaled(APPENDS, a.scale);
    char chunk[80];
    for (uint64_t i = 0; i < appends; i++) {
        string *s = &strs[rng_below(&r, STRINGS)];
        size_t n = (size_t)rng_range(&r, 1, sizeof chunk);
        char c = (char)('a' + rng_below(&r, 26));
        for (size_t k = 0; k < n; k++)
            chunk[k] = (char)(c + (k & 7));
        s->s = xrealloc(s->s, s->len + n + 1);
        memcpy(s->s + s->len, chunk, n);
        s->len += n;
        s->s[s->len] = '\0';
        s->hash = fnv(s->hash, chunk, n);
        if (s->len >= s->limit) {
            if (strlen(s->s) != s->len || fnv(0xcbf29ce484222325ULL, s->s, s->len) != s->hash)
                FAIL("string of %zu bytes: content lost across realloc", s->len);
            h = mix(h, s->hash);
            finished++;
            free(s->s);
            string_reset(s, &r);
        }
    }
    for (int i = 0; i < STRINGS; i++) {
        string *s = &strs[i];
        if (s->s && fnv(0xcbf29ce484222325ULL, s->s, s->len) != s->hash)
            FAIL("string of %zu bytes: content lost across realloc", s->len);
        h = mix(h, s->hash);
        free(s->s);
    }
    free(strs);

    vector *vecs = xmalloc(sizeof(vector) * VECTORS);
    for (int i = 0; i < VECTORS; i++)
        vector_reset(&vecs[i], &r);
    uint64_t pushes = scaled(PUSHES, a.scale);
    for (uint64_t i = 0; i < pushes;) {
        /* Push a run of elements onto one vector, as a loop filling a vector does. */
        vector *v = &vecs[rng_below(&r, VECTORS)];
        uint64_t run = rng_range(&r, 1, 4096);
        uint64_t x = rng_next(&r);
        for (uint64_t j = 0; j < run; j++, i++) {
            if (v->len == v->cap) {
                v->cap = v->cap ? 2 * v->cap : 4;
                v->v = xrealloc(v->v, v->cap * sizeof(uint64_t));
            }
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            v->v[v->len++] = x;
            v->sum += x;
            if (v->len == v->limit) {
                uint64_t sum = 0;
                for (size_t k = 0; k < v->len; k++)
                    sum += v->v[k];
                if (sum != v->sum)
                    FAIL("vector of %zu elements: content lost across realloc", v->len);
                h = mix(h, sum);
                finished++;
                free(v->v);
                vector_reset(v, &r);
                break;
            }
        }
    }
    for (int i = 0; i < VECTORS; i++) {
        h = mix(h, vecs[i].sum);
        free(vecs[i].v);
    }
    free(vecs);
    print_checksum(mix(h, finished));
    return 0;
}
