/* large: large blocks in the style of malloc-large.
 *
 * SLOTS live blocks of 5..25 MiB; each step replaces a random one: the new block is
 * allocated and every OS page of it written, the old one is verified (every page) and freed.
 * An allocator that returns large blocks to the kernel on free pays a mapping, page faults and
 * zeroing on every step; one that keeps them pays in peak RSS. One thread.
 */
#include "bench.h"

#define SLOTS 20
#define MIN_SIZE (5ULL << 20)
#define MAX_SIZE (25ULL << 20)
#define STEPS 500ULL /* replacements at SCALE 1 */

typedef struct {
    char *p;
    size_t size;
    uint64_t tag;
} block;

static size_t page;

static void fill(block *b) {
    for (size_t off = 0; off + 16 <= b->size; off += page)
        store64(b->p + off, b->tag + off);
    store64(b->p + b->size - 8, ~b->tag);
}

static uint64_t verify(const block *b) {
    uint64_t h = 0;
    for (size_t off = 0; off + 16 <= b->size; off += page) {
        uint64_t v = load64(b->p + off);
        if (v != b->tag + off)
            FAIL("large block of %zu bytes: page at %zu corrupted", b->size, off);
        h += v;
    }
    if (load64(b->p + b->size - 8) != ~b->tag)
        FAIL("large block of %zu bytes: last word corrupted", b->size);
    return h;
}

static void make(block *b, rng_t *r) {
    /* A multiple of 8 bytes, so that the last word is aligned. */
    b->size = (size_t)rng_range(r, MIN_SIZE / 8, MAX_SIZE / 8) * 8;
    b->tag = rng_next(r);
    b->p = xmalloc(b->size);
    fill(b);
}

int main(int argc, char **argv) {
    bench_args a = bench_parse(argc, argv, "large", NULL);
    page = (size_t)sysconf(_SC_PAGESIZE);
    rng_t r;
    rng_seed(&r, seed_for(6, 0));
    block b[SLOTS];
    for (int i = 0; i < SLOTS; i++)
        make(&b[i], &r);
    uint64_t h = 0, steps = scaled(STEPS, a.scale);
    for (uint64_t i = 0; i < steps; i++) {
        uint64_t k = rng_below(&r, SLOTS);
        block fresh;
        make(&fresh, &r);
        h = mix(h, verify(&b[k]));
        free(b[k].p);
        b[k] = fresh;
    }
    for (int i = 0; i < SLOTS; i++) {
        h = mix(h, verify(&b[i]));
        free(b[i].p);
    }
    print_checksum(h);
    return 0;
}
