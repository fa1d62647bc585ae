/* realloc of a small block already freed. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(100);
    char *neighbour = malloc(100);
    free(p);
    announce(p);
    p = realloc(launder(p), 200);
    free(neighbour);
    survived();
}
