/*
 * malloc_h.c - glibc's <malloc.h> calls that mapalloc adds to malloc & co.:
 * mallopt (1 for glibc's parameters with values glibc takes, 0 for others)
 * and malloc_info (glibc's XML shape). Prints the XML of one malloc_info call
 * between "xml-begin" and "xml-end" lines for the test to parse, then "ok".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "FAIL malloc_h.c:%d: ", __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            failures++;                                                    \
        }                                                                  \
    } while (0)

int main(void)
{
    static const struct {
        int param, value, want;
    } opts[] = {
        {M_MXFAST, 0, 1},          {M_MXFAST, 64, 1},         {M_MXFAST, 160, 1},
        {M_MXFAST, 161, 0},        {M_MXFAST, -1, 0},         {M_NLBLKS, 5, 1},
        {M_GRAIN, 5, 1},           {M_KEEP, 5, 1},            {M_TRIM_THRESHOLD, 1 << 20, 1},
        {M_TOP_PAD, 0, 1},         {M_MMAP_THRESHOLD, 1 << 20, 1},
        {M_MMAP_THRESHOLD, 64 << 20, 1}, {M_MMAP_MAX, 0, 1},  {M_CHECK_ACTION, 3, 1},
        {M_PERTURB, 0xaa, 1},      {M_ARENA_TEST, 8, 1},      {M_ARENA_MAX, 1, 1},
        {M_ARENA_MAX, 0, 1},
        /* not glibc's (glibc 2.36 itself returns 1 for these too) */
        {0, 1, 0},                 {42, 1, 0},                {-9, 1, 0},
        {-100, 1, 0},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        int r = mallopt(opts[i].param, opts[i].value);
        CHECK(r == opts[i].want, "mallopt(%d, %d) = %d, want %d", opts[i].param, opts[i].value, r,
              opts[i].want);
    }
    /* mallopt changes nothing: allocation still works as before */
    mallopt(M_PERTURB, 0x55);
    char *small = malloc(100);
    CHECK(small != NULL, "malloc after mallopt");
    memset(small, 7, 100);
    CHECK(small[99] == 7, "block after mallopt");

    /* one live large block and some small ones, so the totals are not all 0 */
    char *big = malloc(8 << 20);
    CHECK(big != NULL, "malloc(8 MiB)");
    memset(big, 1, 8 << 20);
    void *many[100];
    for (int i = 0; i < 100; i++)
        many[i] = malloc(32 + i);

    errno = 0;
    CHECK(malloc_info(1, stdout) == -1 && errno == EINVAL, "malloc_info(1, ...) errno %d", errno);
    fflush(stdout);
    printf("xml-begin\n");
    fflush(stdout);
    CHECK(malloc_info(0, stdout) == 0, "malloc_info(0, stdout) failed");
    fflush(stdout);
    printf("xml-end\n");
    for (int i = 0; i < 100; i++)
        free(many[i]);
    free(big);
    free(small);
    if (failures) {
        fprintf(stderr, "malloc_h: %d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
