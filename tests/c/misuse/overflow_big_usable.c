/* One byte past malloc_usable_size of a 100000-byte block (not a multiple of the page size)
 * is its trailing guard: the usable size is the request rounded up to 16. */
#include <malloc.h>
#include "misuse.h"

int main(void)
{
    char *p = malloc(100000);
    size_t u = malloc_usable_size(p);
    if (u != 100000) {
        fprintf(stderr, "usable size %zu, not 100000\n", u);
        return 2;
    }
    memset(p, 1, u);
    report_faults();
    announce_as("expect", p + u);
    ((volatile char *)launder(p))[u] = 1;
    survived();
}
