/* Freeing a block-aligned address that malloc never handed out: the
 * 1,300th 48-byte block of the page of a fresh 48-byte block (pages of
 * small blocks are 64 KiB and start 64 KiB-aligned), where no block has
 * been carved yet. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(48);
    char *q = (char *)(((uintptr_t)p & ~(uintptr_t)0xffff) + 48 * 1300);
    announce(q);
    free(launder(q));
    survived();
}
