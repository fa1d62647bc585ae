/* Walking off the end of a region (segment) of small blocks, one OS page at
 * a time from a small block, hits the guard page at the region's end
 * (before reaching whatever is mapped after it). The test checks that the
 * fault lies in the last OS page of the 4 MiB-aligned region. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(64);
    long ps = sysconf(_SC_PAGESIZE);
    uintptr_t region = (uintptr_t)p & ~(uintptr_t)((4 << 20) - 1);
    announce_as("expect", (void *)(region + (4 << 20) - ps));
    report_faults();
    volatile char *q = (volatile char *)(((uintptr_t)p + ps) & ~(uintptr_t)(ps - 1));
    for (;;) {
        (void)*q;
        q += ps;
    }
}
