/* realloc of a pointer into the middle of a block. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(512);
    announce(p + 64);
    p = realloc(launder(p + 64), 1024);
    survived();
}
