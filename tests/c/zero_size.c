/*
 * zero_size.c - zero-size blocks: unique, freeable, usable size 0, realloc
 * from them, every allocation call that can ask for zero bytes, from
 * threads. (That they fault when touched is checked by the misuse programs
 * zero_size_*.c.)
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 4096

static int fail(const char *what)
{
    fprintf(stderr, "zero_size: %s\n", what);
    exit(1);
}

static int cmp(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void *many(void *arg)
{
    uintptr_t *v = arg;
    for (int i = 0; i < N; i++) {
        void *p = (i % 3 == 0) ? malloc(0) : (i % 3 == 1) ? calloc(i, 0) : aligned_alloc(64, 0);
        if (!p)
            fail("null zero-size block");
        if (malloc_usable_size(p) != 0)
            fail("usable size of a zero-size block is not 0");
        if ((uintptr_t)p % 16 != 0 || (i % 3 == 2 && (uintptr_t)p % 64 != 0))
            fail("zero-size block misaligned");
        v[i] = (uintptr_t)p;
    }
    return NULL;
}

int main(void)
{
    static uintptr_t v[4 * N];
    pthread_t t[4];
    for (int k = 0; k < 4; k++)
        if (pthread_create(&t[k], NULL, many, v + k * N))
            fail("pthread_create");
    for (int k = 0; k < 4; k++)
        pthread_join(t[k], NULL);
    qsort(v, 4 * N, sizeof(uintptr_t), cmp);
    for (int i = 1; i < 4 * N; i++)
        if (v[i] == v[i - 1])
            fail("one zero-size block handed out twice");
    for (int i = 0; i < 4 * N; i++)
        free((void *)v[i]);

    /* realloc from and to zero bytes */
    char *p = malloc(0);
    char *q = realloc(p, 100);
    if (!q)
        fail("realloc from a zero-size block");
    memset(q, 7, 100);
    if (malloc_usable_size(q) < 100)
        fail("realloc'd block too small");
    free(q);
    void *z = memalign(256, 0);
    void *pm = NULL;
    if (!z || (uintptr_t)z % 256 != 0 || posix_memalign(&pm, 4096, 0) != 0 || !pm ||
        (uintptr_t)pm % 4096 != 0)
        fail("aligned zero-size blocks");
    free(z);
    free(pm);
    /* An alignment above what the slots serve still gives a block. */
    void *big = aligned_alloc(1 << 16, 0);
    if (!big || (uintptr_t)big % (1 << 16) != 0)
        fail("64 KiB-aligned zero-size block");
    free(big);
    printf("%d zero-size blocks\nok\n", 4 * N);
    return 0;
}
