/* A read of a freed 64 KiB block faults: blocks of 64 KiB or more are large blocks, whose
 * pages are closed while they wait in the large-block cache. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(64 << 10);
    memset(p, 7, 64 << 10);
    free(p);
    report_faults();
    announce_as("expect", p);
    int v = ((volatile char *)launder(p))[0];
    printf("read %d\n", v);
    survived();
}
