/* Writing through the pointer malloc(0) returned: the block has no byte to
 * write, and its slot is inaccessible. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(0);
    report_faults();
    announce_as("expect", p);
    volatile char *q = launder(p);
    q[0] = 1;
    survived();
}
