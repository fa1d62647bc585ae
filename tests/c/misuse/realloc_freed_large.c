/* realloc of a large block already freed. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(3 << 20);
    free(p);
    announce(p);
    p = realloc(launder(p), 5 << 20);
    survived();
}
