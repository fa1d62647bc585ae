/* Freeing the start of a mapping made by the program itself with mmap. */
#include <sys/mman.h>
#include "misuse.h"

int main(void)
{
    char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 2;
    p[0] = 1;
    announce(p);
    free(launder(p));
    survived();
}
