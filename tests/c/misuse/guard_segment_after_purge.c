/* The guards of a region of small blocks survive the purge of its free pages
 * (MADV_DONTNEED): fill many pages with blocks, free all but the first (which
 * keeps the region in use rather than cached, and a cached region would be
 * unmapped by the trim), purge the free pages with malloc_trim(0), allocate
 * again and walk forward across the purged pages to the guard at the end of
 * the block's 512 KiB stride. */
#include <malloc.h>
#include "misuse.h"

#define N 20000

int main(void)
{
    static char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(128);
        memset(blocks[i], 1, 128);
    }
    for (int i = 1; i < N; i++)
        free(blocks[i]);
    malloc_trim(0);
    char *p = malloc(128);
    if (((uintptr_t)p ^ (uintptr_t)blocks[0]) >> 22 != 0)
        return 2; /* not in the same region as the block kept */
    long ps = sysconf(_SC_PAGESIZE);
    uintptr_t stride_end = ((uintptr_t)p | (uintptr_t)((512 << 10) - 1)) + 1;
    announce_as("expect", (void *)(stride_end - ps));
    report_faults();
    volatile char *q = (volatile char *)(((uintptr_t)p + ps) & ~(uintptr_t)(ps - 1));
    for (;;) {
        (void)*q;
        q += ps;
    }
}
