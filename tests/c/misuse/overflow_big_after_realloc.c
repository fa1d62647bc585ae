/* realloc keeps a big block's end against its guard, growing (by more than its pages) and
 * shrinking (within them), with the data kept. The sizes are multiples of 16, so that strict
 * mode (whose usable size is the request) ends at the guard too. */
#include <malloc.h>
#include "misuse.h"

static int check(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i % 251))
            return 0;
    return 1;
}

int main(void)
{
    unsigned char *p = malloc(70000);
    for (size_t i = 0; i < 70000; i++)
        p[i] = (unsigned char)(i % 251);
    p = realloc(p, 300016);
    size_t u = malloc_usable_size(p);
    if (!check(p, 70000) || u != 300016) {
        fprintf(stderr, "grown block: data lost or usable %zu\n", u);
        return 2;
    }
    for (size_t i = 70000; i < u; i++)
        p[i] = (unsigned char)(i % 251);
    p = realloc(p, 200016);
    u = malloc_usable_size(p);
    if (!check(p, 200016) || u != 200016) {
        fprintf(stderr, "shrunk block: data lost or usable %zu\n", u);
        return 2;
    }
    report_faults();
    announce_as("expect", p + u);
    ((volatile char *)launder(p))[u] = 1;
    survived();
}
