/* A memcpy of 1 MiB into a 4 KiB block in the middle of its segment faults on
 * a guard (issue 20, item 3), somewhere in the 1 MiB it would write. */
#include "misuse.h"

static char src[1 << 20];

int main(void)
{
    char *p = block_mid_segment(4096);
    memset(src, 3, sizeof src);
    report_faults();
    announce_as("low", p);
    announce_as("high", p + FAR);
    memcpy(launder(p), src, FAR);
    survived();
}
