/* A memset of 1 MiB from an 8-byte block in the middle of its segment faults
 * on a guard (issue 20, item 3); where memset starts its stores is its own
 * affair, so the fault may lie anywhere in the 1 MiB. */
#include "misuse.h"

int main(void)
{
    char *p = block_mid_segment(8);
    report_faults();
    announce_as("low", p);
    announce_as("high", p + FAR);
    memset(launder(p), 2, FAR);
    survived();
}
