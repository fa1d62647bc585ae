/* Freeing a pointer to static storage. */
#include "misuse.h"

static char buffer[4096] __attribute__((aligned(4096)));

int main(void)
{
    announce(buffer);
    free(launder(buffer));
    survived();
}
