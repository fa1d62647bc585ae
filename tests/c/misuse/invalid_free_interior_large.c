/* Freeing a pointer into the middle of a large block (page-aligned, as a
 * block start would be). */
#include "misuse.h"

int main(void)
{
    char *p = malloc(2 << 20);
    announce(p + 4096);
    free(launder(p + 4096));
    survived();
}
