/* A loop of byte writes running 1 MiB down from a 4 KiB block of a thread
 * other than main faults on a guard within 512 KiB (issue 20, item 3). */
#include "misuse.h"
#include <pthread.h>

static void *underflow(void *arg)
{
    (void)arg;
    char *p = block_mid_segment(4096);
    announce_as("low", p - GUARD_STRIDE);
    announce_as("high", p);
    volatile char *q = launder(p);
    for (size_t i = 1; i <= FAR; i++)
        q[-(ptrdiff_t)i] = 2;
    return NULL;
}

int main(void)
{
    report_faults();
    pthread_t t;
    if (pthread_create(&t, NULL, underflow, NULL) != 0)
        return 2;
    pthread_join(t, NULL);
    survived();
}
