/*
 * rlimit_as.c - allocation under an address-space limit (RLIMIT_AS) set just
 * above what the process has mapped, as glibc's dynamic-array failure test
 * does: find the lowest limit at which one more page can still be mapped,
 * add HEADROOM MiB, then allocate until the allocator says no.
 *
 * Usage: rlimit_as HEADROOM_MIB WORKLOAD
 *   small   blocks of 16..1024 bytes
 *   medium  blocks of 8..64 KiB
 *   big     blocks of 64..512 KiB
 *   array   one array of ints grown by realloc doubling
 *   large   blocks of 1 MiB
 * Prints "served BYTES" (the bytes of all blocks obtained, or the array's
 * largest size), checks that the failure was NULL with errno ENOMEM, that
 * every block kept its contents, frees everything, allocates again, then
 * prints "ok". Nothing is allocated before the limit is set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_BLOCKS 400000
static void *blocks[MAX_BLOCKS];
static size_t sizes[MAX_BLOCKS];

static void fail(const char *what)
{
    /* no stdio: it may need memory that is not there */
    write(2, "rlimit_as: ", 11);
    write(2, what, strlen(what));
    write(2, "\n", 1);
    exit(1);
}

static void set_limit(size_t headroom)
{
    size_t lo = 0, hi = (size_t)1 << 40;
    while (hi - lo > 4096) {
        size_t mid = (lo + (hi - lo) / 2) & ~(size_t)4095;
        struct rlimit r = {mid, RLIM_INFINITY};
        if (setrlimit(RLIMIT_AS, &r))
            fail("setrlimit");
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            munmap(p, 4096);
            hi = mid;
        } else {
            lo = mid;
        }
    }
    struct rlimit r = {hi + headroom, RLIM_INFINITY};
    if (setrlimit(RLIMIT_AS, &r))
        fail("setrlimit");
}

static uint64_t state = 88172645463325252ull;
static size_t rnd(size_t lo, size_t hi)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return lo + state % (hi - lo + 1);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        fail("usage: rlimit_as HEADROOM_MIB WORKLOAD");
    const char *w = argv[2];
    size_t lo, hi;
    if (!strcmp(w, "small"))
        lo = 16, hi = 1024;
    else if (!strcmp(w, "medium"))
        lo = 8 << 10, hi = 64 << 10;
    else if (!strcmp(w, "big"))
        lo = 64 << 10, hi = 512 << 10;
    else if (!strcmp(w, "large"))
        lo = hi = 1 << 20;
    else if (!strcmp(w, "array"))
        lo = hi = 0;
    else
        fail("unknown workload");
    set_limit((size_t)strtoul(argv[1], NULL, 10) << 20);

    size_t served = 0;
    if (lo == 0) {
        int *a = NULL;
        size_t n = 0;
        for (size_t cap = 4;; cap *= 2) {
            errno = 0;
            int *b = realloc(a, cap * sizeof(int));
            if (!b) {
                if (errno != ENOMEM)
                    fail("realloc failed without ENOMEM");
                break;
            }
            a = b;
            for (; n < cap; n++)
                a[n] = (int)n;
            served = cap * sizeof(int);
        }
        for (size_t i = 0; i < n; i++)
            if (a[i] != (int)i)
                fail("the array lost its contents");
        free(a);
    } else {
        size_t n = 0;
        for (; n < MAX_BLOCKS; n++) {
            size_t s = rnd(lo, hi);
            errno = 0;
            void *p = malloc(s);
            if (!p) {
                if (errno != ENOMEM)
                    fail("malloc failed without ENOMEM");
                break;
            }
            memset(p, (int)(n & 0xff), s);
            blocks[n] = p;
            sizes[n] = s;
            served += s;
        }
        errno = 0;
        if (calloc(1, 64 << 20) != NULL || errno != ENOMEM)
            fail("calloc of 64 MiB after exhaustion: not NULL with ENOMEM");
        for (size_t i = 0; i < n; i++) {
            unsigned char *p = blocks[i];
            if (p[0] != (i & 0xff) || p[sizes[i] - 1] != (i & 0xff))
                fail("a block lost its contents");
            free(p);
        }
    }
    /* Everything was given back: the memory serves again. */
    void *again = malloc(lo ? lo : 64);
    if (!again)
        fail("no memory after everything was freed");
    free(again);
    char line[64];
    int len = snprintf(line, sizeof line, "served %zu\nok\n", served);
    write(1, line, (size_t)len);
    return 0;
}
