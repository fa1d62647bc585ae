/*
 * resolve.c - which shared object provides the allocator symbols?
 *
 * Usage: resolve EXPECTED [OPTIONAL_SYMBOL...]
 *
 * Looks every allocator symbol up with dlsym(RTLD_DEFAULT, name), finds the
 * object that defines it with dladdr, and checks that the object's path
 * contains the string EXPECTED (e.g. "libmapalloc.so" under LD_PRELOAD, or
 * "libc.so" to validate this program against the host libc). malloc and
 * free are always required; every other symbol listed below is required too
 * unless it is named on the command line as OPTIONAL_SYMBOL, in which case
 * it may be missing (but if present it must still come from EXPECTED).
 *
 * It also checks that the program's own calls reach the same functions:
 * the address of malloc as seen by this executable must equal the dlsym
 * result.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SYMBOLS[] = {
    "malloc",         "free",           "calloc",
    "realloc",        "reallocarray",   "posix_memalign",
    "aligned_alloc",  "memalign",       "valloc",
    "pvalloc",        "malloc_usable_size", "free_sized",
    "free_aligned_sized", "malloc_trim", "mallinfo",
    "mallinfo2",      "malloc_stats",   "__libc_malloc",
    "__libc_free",    "__libc_calloc",  "__libc_realloc",
    "__libc_memalign", "__posix_memalign",
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s EXPECTED_OBJECT_SUBSTRING [OPTIONAL_SYMBOL...]\n", argv[0]);
        return 2;
    }
    const char *expected = argv[1];
    int failures = 0;

    for (size_t i = 0; i < sizeof SYMBOLS / sizeof SYMBOLS[0]; i++) {
        const char *name = SYMBOLS[i];
        int optional = 0;
        for (int a = 2; a < argc; a++)
            if (strcmp(argv[a], name) == 0)
                optional = 1;
        if (strcmp(name, "malloc") == 0 || strcmp(name, "free") == 0)
            optional = 0;

        void *sym = dlsym(RTLD_DEFAULT, name);
        if (sym == NULL) {
            if (optional) {
                printf("%-20s not found (optional)\n", name);
                continue;
            }
            fprintf(stderr, "FAIL resolve: %s is not defined by any loaded object\n", name);
            failures++;
            continue;
        }
        Dl_info info;
        if (dladdr(sym, &info) == 0 || info.dli_fname == NULL) {
            fprintf(stderr, "FAIL resolve: dladdr(%p) for %s failed\n", sym, name);
            failures++;
            continue;
        }
        printf("%-20s %s\n", name, info.dli_fname);
        if (strstr(info.dli_fname, expected) == NULL) {
            fprintf(stderr, "FAIL resolve: %s comes from %s, expected an object named *%s*\n",
                    name, info.dli_fname, expected);
            failures++;
        }
    }

    /* The executable's own references bind to the same definitions. */
    void *(*volatile self_malloc)(size_t) = malloc;
    void (*volatile self_free)(void *) = free;
    if ((void *)self_malloc != dlsym(RTLD_DEFAULT, "malloc")) {
        fprintf(stderr, "FAIL resolve: &malloc in the program (%p) != dlsym(malloc) (%p)\n",
                (void *)self_malloc, dlsym(RTLD_DEFAULT, "malloc"));
        failures++;
    }
    if ((void *)self_free != dlsym(RTLD_DEFAULT, "free")) {
        fprintf(stderr, "FAIL resolve: &free in the program (%p) != dlsym(free) (%p)\n",
                (void *)self_free, dlsym(RTLD_DEFAULT, "free"));
        failures++;
    }
    /* and a block from the program's malloc can be used and freed */
    char *p = self_malloc(64);
    if (p == NULL) {
        fprintf(stderr, "FAIL resolve: malloc(64) returned NULL\n");
        return 1;
    }
    memset(p, 1, 64);
    self_free(p);

    if (failures) {
        fprintf(stderr, "resolve: %d failure(s)\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
