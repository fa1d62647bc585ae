/* threadchurn: thread-local churn in the style of glibc's bench-malloc-thread.
 *
 * Each thread keeps its own working set of SLOTS blocks and repeatedly frees a random one and
 * allocates a replacement of random size. Sizes follow glibc's inverse-square distribution
 * between 8 bytes and 32 KiB: mostly small, a long tail of larger blocks. No block crosses
 * threads, so this measures the thread-local fast paths and the cost of sharing the
 * allocator's global state.
 */
#include "bench.h"

#define SLOTS 4096
#define MIN_SIZE 8
#define MAX_SIZE 32768
#define OPS_PER_THREAD 40000000ULL /* at SCALE 1 */

typedef struct {
    int id;
    uint64_t ops;
    uint64_t result;
} worker;

/* Inverse-square distribution on [MIN_SIZE, MAX_SIZE] (glibc benchtests: get_block_size). */
static uint64_t draw_size(rng_t *r) {
    double u = (double)(rng_next(r) >> 11) * 0x1.0p-53;
    double lo = 1.0 / MIN_SIZE, hi = 1.0 / MAX_SIZE;
    uint64_t s = (uint64_t)(1.0 / (lo - u * (lo - hi)));
    return s < MIN_SIZE ? MIN_SIZE : (s > MAX_SIZE ? MAX_SIZE : s);
}

static void *work(void *arg) {
    worker *w = arg;
    rng_t r;
    rng_seed(&r, seed_for(3, (uint64_t)w->id));
    void **ptr = xmalloc(sizeof(void *) * SLOTS);
    uint32_t *size = xmalloc(sizeof(uint32_t) * SLOTS);
    uint64_t *tag = xmalloc(sizeof(uint64_t) * SLOTS);
    for (int i = 0; i < SLOTS; i++) {
        size[i] = (uint32_t)draw_size(&r);
        tag[i] = rng_next(&r);
        ptr[i] = xmalloc(size[i]);
        touch_block(ptr[i], size[i], tag[i]);
    }
    uint64_t h = 0;
    for (uint64_t i = 0; i < w->ops; i++) {
        uint64_t k = rng_below(&r, SLOTS);
        check_touched(ptr[k], size[k], tag[k]);
        free(ptr[k]);
        size[k] = (uint32_t)draw_size(&r);
        tag[k] = rng_next(&r);
        ptr[k] = xmalloc(size[k]);
        touch_block(ptr[k], size[k], tag[k]);
        h += size[k] ^ (k << 20);
    }
    for (int i = 0; i < SLOTS; i++) {
        check_touched(ptr[i], size[i], tag[i]);
        free(ptr[i]);
    }
    free(ptr);
    free(size);
    free(tag);
    w->result = h;
    return NULL;
}

int main(int argc, char **argv) {
    bench_args a = bench_parse(argc, argv, "threadchurn", NULL);
    worker *w = xmalloc(sizeof(worker) * (size_t)a.threads);
    for (int t = 0; t < a.threads; t++)
        w[t] = (worker){.id = t, .ops = scaled(OPS_PER_THREAD, a.scale)};
    run_threads(a.threads, work, w, sizeof(worker));
    uint64_t h = 0;
    for (int t = 0; t < a.threads; t++)
        h = mix(h, w[t].result);
    free(w);
    print_checksum(h);
    return 0;
}
