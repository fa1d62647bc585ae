/* A loop of byte writes running 1 MiB forward from a 4 KiB block of a thread
 * other than main (its own heap, its own segment) faults on a guard within
 * 512 KiB (issue 20, item 3). */
#include "misuse.h"
#include <pthread.h>

static void *overflow(void *arg)
{
    (void)arg;
    char *p = block_mid_segment(4096);
    announce_as("low", p);
    announce_as("high", p + GUARD_STRIDE);
    volatile char *q = launder(p);
    for (size_t i = 0; i < FAR; i++)
        q[i] = 2;
    return NULL;
}

int main(void)
{
    report_faults();
    pthread_t t;
    if (pthread_create(&t, NULL, overflow, NULL) != 0)
        return 2;
    pthread_join(t, NULL);
    survived();
}
