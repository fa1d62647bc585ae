/* retain: a growing retained set, in the style of mleak.
 *
 * A long-running program that leaks: blocks of 16..2048 bytes are allocated; most live only
 * a short random time (a ring of RECENT recent blocks, one random victim freed per step), but
 * one in KEEP_EVERY is never freed. The retained blocks pin the pages they land on, so an
 * allocator that mixes short- and long-lived blocks on the same pages keeps far more memory
 * than the retained bytes: peak RSS is the figure to watch. The retained blocks are verified
 * at exit and deliberately not freed. One thread.
 */
#include "bench.h"

#define MIN_SIZE 16
#define MAX_SIZE 2048
#define RECENT 20000
#define KEEP_EVERY 64
#define STEPS 6000000ULL /* allocations at SCALE 1 */

typedef struct {
    void *p;
    uint32_t size;
} kept;

int main(int argc, char **argv) {
    bench_args a = bench_parse(argc, argv, "retain", NULL);
    rng_t r;
    rng_seed(&r, seed_for(7, 0));
    uint64_t steps = scaled(STEPS, a.scale);
    size_t kept_cap = (size_t)(steps / KEEP_EVERY) * 2 + 16, nkept = 0;
    kept *keep = xmalloc(sizeof(kept) * kept_cap);
    void **recent = xmalloc(sizeof(void *) * RECENT);
    for (int i = 0; i < RECENT; i++) {
        uint64_t size = rng_range(&r, MIN_SIZE, MAX_SIZE);
        recent[i] = xmalloc(size);
        stamp_block(recent[i], size, rng_next(&r) >> 32);
    }
    uint64_t h = 0, retained_bytes = 0;
    for (uint64_t i = 0; i < steps; i++) {
        uint64_t size = rng_range(&r, MIN_SIZE, MAX_SIZE);
        void *p = xmalloc(size);
        stamp_block(p, size, rng_next(&r) >> 32);
        if (rng_below(&r, KEEP_EVERY) == 0 && nkept < kept_cap) {
            keep[nkept++] = (kept){p, (uint32_t)size};
            retained_bytes += size;
            continue;
        }
        uint64_t k = rng_below(&r, RECENT);
        h += check_block(recent[k], MIN_SIZE, MAX_SIZE) ^ k;
        free(recent[k]);
        recent[k] = p;
    }
    for (size_t i = 0; i < nkept; i++)
        if (check_block(keep[i].p, MIN_SIZE, MAX_SIZE) != keep[i].size)
            FAIL("retained block %zu corrupted", i);
    for (int i = 0; i < RECENT; i++)
        free(recent[i]);
    /* keep[] and the retained blocks are leaked on purpose: that is the workload. */
    print_checksum(mix(mix(h, nkept), retained_bytes));
    return 0;
}
