/* Freeing a large block twice in a row (the first free keeps it cached). */
#include "misuse.h"

int main(void)
{
    char *p = malloc(4 << 20);
    p[0] = 1;
    free(p);
    announce(p);
    free(launder(p));
    survived();
}
