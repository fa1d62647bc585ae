/* A large block served again from the large-block cache keeps the guard
 * before it. */
#include <malloc.h>
#include "misuse.h"

int main(void)
{
    char *p = malloc(1 << 20);
    memset(p, 7, 1 << 20);
    uintptr_t first = (uintptr_t)p;
    free(p);
    char *q = malloc(1 << 20);
    if ((uintptr_t)q != first) {
        fprintf(stderr, "not reused from the cache: %#lx then %p\n", (unsigned long)first, (void *)q);
        return 2;
    }
    memset(q, 1, malloc_usable_size(q));
    report_faults();
    announce_as("expect", q - 1);
    ((volatile char *)launder(q))[-1] = 1;
    survived();
}
