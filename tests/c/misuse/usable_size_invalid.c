/* malloc_usable_size of a pointer to a local variable. */
#include <malloc.h>
#include "misuse.h"

int main(void)
{
    char local[32] __attribute__((aligned(16)));
    memset(local, 0, sizeof local);
    announce(local);
    size_t n = malloc_usable_size(launder(local));
    printf("usable=%zu\n", n);
    survived();
}
