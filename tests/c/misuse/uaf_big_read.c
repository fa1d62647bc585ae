/* A read of a freed 72 KiB block faults: blocks above 64 KiB are large blocks, whose
 * pages are closed while they wait in the large-block cache. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(72 << 10);
    memset(p, 7, 72 << 10);
    free(p);
    report_faults();
    announce_as("expect", p);
    int v = ((volatile char *)launder(p))[0];
    printf("read %d\n", v);
    survived();
}
