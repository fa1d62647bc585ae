/* Writing one byte before a 256 KiB block, the first of its size in a fresh
 * process, faults in both modes: the first block of a fresh page sits right
 * above a guard (the segment's metadata guard, or in strict mode the
 * previous page's tail guard; strict mode hands a fresh page's lowest block
 * out first, the rest in shuffled order). */
#include "misuse.h"

int main(void)
{
    char *p = malloc(262144);
    memset(p, 1, 262144);
    report_faults();
    announce_as("expect", p - 1);
    ((volatile char *)launder(p))[-1] = 1;
    survived();
}
