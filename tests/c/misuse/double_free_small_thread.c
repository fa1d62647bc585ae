/* A small block freed by its owning thread, then again by another thread. */
#include <pthread.h>
#include "misuse.h"

static void *second_free(void *p)
{
    free(launder(p));
    return NULL;
}

int main(void)
{
    char *p = malloc(64);
    char *neighbour = malloc(64);
    free(p);
    announce(p);
    pthread_t t;
    pthread_create(&t, NULL, second_free, p);
    pthread_join(t, NULL);
    free(neighbour);
    survived();
}
