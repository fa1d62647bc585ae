/* Freeing a small block a second time after much other traffic: thousands
 * of blocks of many sizes (its own class included) allocated and freed in
 * between. A neighbour stays live, so the block's page stays in use. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(48);
    char *neighbour = malloc(48);
    free(p);
    static void *keep[20000];
    unsigned x = 1;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 20000; i++) {
            x = x * 1103515245u + 12345u;
            keep[i] = malloc(16 + (x >> 8) % 3000);
            memset(keep[i], 1, 16);
        }
        for (int i = 0; i < 20000; i++)
            free(keep[i]);
    }
    announce(p);
    free(launder(p));
    free(neighbour);
    survived();
}
