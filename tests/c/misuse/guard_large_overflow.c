/* Writing one byte past the usable end of a large block hits the guard
 * page directly after it. */
#include <malloc.h>
#include "misuse.h"

int main(void)
{
    char *p = malloc((1 << 20) + 100);
    size_t n = malloc_usable_size(p);
    memset(p, 1, n); /* every usable byte is writable */
    report_faults();
    announce_as("expect", p + n);
    /* Flip the byte rather than store a constant: in strict mode the slack holds random canary
     * bytes, and a store of the value already there would change nothing. */
    volatile char *q = launder(p);
    q[n] = (char)~q[n];
    /* Strict mode keeps a canary in slack after the usable size: the free reports it. */
    free(launder(p));
    survived();
}
