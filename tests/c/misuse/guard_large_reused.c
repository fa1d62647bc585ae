/* A large block served again from the large-block cache keeps the guard
 * before it. Nine blocks of one size are allocated and freed, and the next request
 * must take one of them from the cache (which one depends on the mode: strict mode
 * keeps the four freed last out of reach; MAPALLOC_PURGE_DELAY_MS=0 keeps only the
 * last one cached). */
#include <malloc.h>
#include "misuse.h"

int main(void)
{
    enum { N = 9, SIZE = 1 << 20 };
    char *blocks[N];
    uintptr_t freed[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(SIZE);
        memset(blocks[i], 7, SIZE);
        freed[i] = (uintptr_t)blocks[i];
    }
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    char *q = malloc(SIZE);
    int reused = 0;
    for (int i = 0; i < N; i++)
        reused |= (uintptr_t)q == freed[i];
    if (!reused) {
        fprintf(stderr, "not reused from the cache: %p\n", (void *)q);
        return 2;
    }
    memset(q, 1, malloc_usable_size(q));
    report_faults();
    announce_as("expect", q - 1);
    ((volatile char *)launder(q))[-1] = 1;
    survived();
}
