/* Walking forward from a small block, one OS page at a time, hits the guard
 * at the end of the block's 512 KiB stride of its region (segment): the last
 * OS page of every stride is a guard, the region's last one included, so the
 * walk never reaches whatever is mapped after the region. The test checks
 * that the fault lies in the last OS page of the stride. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(64);
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
