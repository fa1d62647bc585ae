/* A block served from a bigger cached block still ends at the trailing guard. */
#include <malloc.h>
#include "misuse.h"

int main(void)
{
    char *p = malloc(300000);
    memset(p, 7, 300000);
    free(p);
    char *q = malloc(280000);
    size_t u = malloc_usable_size(q);
    if (u != 280000) {
        fprintf(stderr, "usable size %zu, not 280000\n", u);
        return 2;
    }
    memset(q, 1, u);
    report_faults();
    announce_as("expect", q + u);
    ((volatile char *)launder(q))[u] = 1;
    survived();
}
