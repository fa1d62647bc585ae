/* Freeing a large block a second time after it left the large-block cache
 * and was unmapped: 48 larger blocks freed after it push it out. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(600 << 10);
    p[0] = 1;
    free(p);
    static char *others[48];
    for (int i = 0; i < 48; i++) {
        others[i] = malloc(1 << 20);
        others[i][0] = 1;
    }
    for (int i = 0; i < 48; i++)
        free(others[i]);
    announce(p);
    free(launder(p));
    survived();
}
