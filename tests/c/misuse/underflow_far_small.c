/* A loop of byte writes running 1 MiB down from an 8-byte block in the middle
 * of its segment faults on a guard within 512 KiB (issue 20, item 3). */
#include "misuse.h"

int main(void)
{
    char *p = block_mid_segment(8);
    report_faults();
    announce_as("low", p - GUARD_STRIDE);
    announce_as("high", p);
    volatile char *q = launder(p);
    for (size_t i = 1; i <= FAR; i++)
        q[-(ptrdiff_t)i] = 2;
    survived();
}
