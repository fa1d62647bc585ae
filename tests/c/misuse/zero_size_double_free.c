/* Freeing a zero-size block twice, with other zero-size blocks handed out
 * between the two frees. */
#include "misuse.h"

int main(void)
{
    char *p = malloc(0);
    free(launder(p));
    void *others[16];
    for (int i = 0; i < 16; i++)
        others[i] = malloc(0);
    announce(p);
    free(launder(p));
    survived();
    (void)others;
}
