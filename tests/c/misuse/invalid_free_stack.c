/* Freeing a pointer to a local variable. */
#include "misuse.h"

int main(void)
{
    char local[64] __attribute__((aligned(16)));
    memset(local, 0, sizeof local);
    announce(local);
    free(launder(local));
    survived();
}
