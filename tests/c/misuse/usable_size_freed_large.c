/* malloc_usable_size of a large block already freed. */
#include <malloc.h>
#include "misuse.h"

int main(void)
{
    char *p = malloc(1 << 20);
    free(p);
    announce(p);
    size_t n = malloc_usable_size(launder(p));
    printf("usable=%zu\n", n);
    survived();
}
