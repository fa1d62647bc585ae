/* Reading a zero-size block (from calloc(n, 0)) after it was freed. */
#include "misuse.h"

int main(void)
{
    char *p = calloc(8, 0);
    free(launder(p));
    report_faults();
    announce_as("expect", p);
    volatile char *q = launder(p);
    char c = q[0];
    (void)c;
    survived();
}
