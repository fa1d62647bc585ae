/* A loop of byte writes running 1 MiB forward from an 8-byte block in the
 * middle of its segment faults on a guard within 512 KiB (issue 20, item 3):
 * no run of accessible heap memory is longer than that. */
#include "misuse.h"

int main(void)
{
    char *p = block_mid_segment(8);
    report_faults();
    announce_as("low", p);
    announce_as("high", p + GUARD_STRIDE);
    volatile char *q = launder(p);
    for (size_t i = 0; i < FAR; i++)
        q[i] = 2;
    survived();
}
