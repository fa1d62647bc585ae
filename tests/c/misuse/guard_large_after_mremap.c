/* A large block grown by realloc (moved by the kernel with mremap into a
 * new guarded range) still has a guard directly after its usable end. */
#include <malloc.h>
#include "misuse.h"

int main(void)
{
    char *p = malloc(1 << 20);
    memset(p, 7, 1 << 20);
    char *blocker = malloc(1 << 20); /* likely next to p: growing in place is not possible */
    p = realloc(p, 3 << 20);
    if (p == NULL || p[(1 << 20) - 1] != 7)
        return 2;
    size_t n = malloc_usable_size(p);
    memset(p, 1, n);
    report_faults();
    announce_as("expect", p + n);
    /* Flip the byte rather than store a constant: in strict mode the slack holds random canary
     * bytes, and a store of the value already there would change nothing. */
    volatile char *q = launder(p);
    q[n] = (char)~q[n];
    /* Strict mode keeps a canary in slack after the usable size: the free reports it. */
    free(launder(p));
    free(blocker);
    survived();
}
