/* Freeing a pointer into the middle of a small block. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(256);
    announce(p + 32);
    free(launder(p + 32));
    survived();
}
