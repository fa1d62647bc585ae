/* A write to a freed 256 KiB block that another thread allocated faults. */
#include <pthread.h>
#include "misuse.h"

static void *make(void *arg)
{
    (void)arg;
    char *p = malloc(256 << 10);
    memset(p, 7, 256 << 10);
    return p;
}

int main(void)
{
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, make, NULL);
    pthread_join(t, &r);
    char *p = r;
    free(p);
    report_faults();
    announce_as("expect", p + 4096);
    ((volatile char *)launder(p))[4096] = 1;
    survived();
}
