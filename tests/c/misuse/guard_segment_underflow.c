/* Walking down from a small block, one OS page at a time, hits the guard
 * between the region's blocks and its metadata: the fault lies inside the
 * same 4 MiB-aligned region, above its first OS page (the metadata is never
 * reached). The program prints the region's bounds for the test. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(64);
    long ps = sysconf(_SC_PAGESIZE);
    uintptr_t region = (uintptr_t)p & ~(uintptr_t)((4 << 20) - 1);
    announce_as("low", (void *)(region + ps));
    announce_as("high", p);
    report_faults();
    volatile char *q = (volatile char *)((uintptr_t)p & ~(uintptr_t)(ps - 1));
    for (;;) {
        (void)*q;
        q -= ps;
    }
}
