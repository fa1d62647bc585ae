/* Writing one byte before a large block hits the guard page directly
 * before it. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(1 << 20);
    memset(p, 1, 1 << 20);
    report_faults();
    announce_as("expect", p - 1);
    ((volatile char *)launder(p))[-1] = 1;
    survived();
}
