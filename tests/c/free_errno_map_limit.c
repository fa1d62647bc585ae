/*
 * free_errno_map_limit.c - free keeps errno while the process is at
 * vm.max_map_count (glibc's free-errno scenario): a 16 MiB block is
 * allocated, the process then maps single pages (alternating protections, so
 * the kernel cannot merge them) until mmap fails with ENOMEM, and free of the
 * block, whose mprotect or munmap may now fail for want of a mapping, must
 * leave errno as it was. Prints "ok" (or "skip: ..." when the limit is too
 * high to reach quickly).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_FILL 300000
static void *fill[MAX_FILL];
/* Through a pointer: compilers may assume that free leaves errno alone. */
static void (*volatile do_free)(void *) = free;

int main(void)
{
    long limit = 0;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (!f || fscanf(f, "%ld", &limit) != 1)
        limit = 65530;
    if (f)
        fclose(f);
    if (limit > MAX_FILL - 1000) {
        printf("skip: vm.max_map_count is %ld\n", limit);
        return 0;
    }
    size_t sizes[] = {16 << 20, 300 << 10, 40 << 10, 100};
    enum { N = sizeof sizes / sizeof sizes[0] };
    char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(sizes[i]);
        if (!blocks[i]) {
            fprintf(stderr, "malloc(%zu) failed\n", sizes[i]);
            return 1;
        }
        memset(blocks[i], 0x5a, sizes[i]);
    }
    int n = 0;
    for (; n < MAX_FILL; n++) {
        int prot = (n & 1) ? PROT_READ : PROT_NONE;
        void *p = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            break;
        fill[n] = p;
    }
    if (n == MAX_FILL) {
        printf("skip: no mapping limit reached\n");
        return 0;
    }
    int failures = 0;
    for (int i = 0; i < N; i++) {
        errno = EDOM;
        do_free(blocks[i]);
        if (errno != EDOM) {
            /* no stdio yet: it may want a mapping */
            char msg[96];
            int len = snprintf(msg, sizeof msg, "free of a %zu-byte block at the map limit changed errno to %d\n",
                               sizes[i], errno);
            write(2, msg, (size_t)len);
            failures++;
        }
    }
    for (int i = 0; i < n; i++)
        munmap(fill[i], 4096);
    if (failures)
        return 1;
    printf("ok\n");
    return 0;
}
