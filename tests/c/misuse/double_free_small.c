/* Freeing a small block twice in a row. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(48);
    free(p);
    announce(p);
    free(launder(p));
    survived();
}
