/* malloc_usable_size of a small block already freed. */
#include <malloc.h>
#include "misuse.h"

int main(void)
{
    char *p = malloc(24);
    char *neighbour = malloc(24);
    free(p);
    announce(p);
    size_t n = malloc_usable_size(launder(p));
    printf("usable=%zu\n", n);
    free(neighbour);
    survived();
}
