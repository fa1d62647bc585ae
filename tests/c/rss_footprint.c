/* Resident memory the allocator itself costs (issue 8: peak RSS).
 *
 * 1. The library's own pages: the resident part of the mappings of libmapalloc.so, after a
 *    few allocations, is at most 160 KiB (224 KiB when it linked std's panic machinery), and
 *    no libgcc_s is loaded (std needed it; this program does not). The kernel maps the
 *    library's page-cache folios whole, so this is close to the size of its text: 116 KiB
 *    before the heap profiler, 152 KiB with its private unwinder (libgcc_eh) and the profile
 *    writer, which profiling-off programs carry but do not run.
 * 2. A growing vector: a block grown by 12.5% at a time with realloc from 64 KiB to the
 *    largest size class (512 KiB), every byte written, eight times over, passes through some
 *    sixteen classes; the resident set may grow by at most 2 MiB (4 MiB when every class kept
 *    its emptied page, a segment each, until the purge delay ran out). Not checked in strict
 *    mode, whose quarantine and batched carving keep more (about 5 MiB).
 * Prints the numbers and "ok".
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KIB 1024UL
#define MIB (1024UL * 1024UL)

static int failed;

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "FAIL %s\n", what);
        failed = 1;
    }
}

static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f || fscanf(f, "%lu %lu", &size, &resident) != 2) {
        fprintf(stderr, "cannot read /proc/self/statm\n");
        exit(2);
    }
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Resident kB of the mappings whose path contains `name`. */
static long mapped_resident_kb(const char *name, int *found) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) {
        fprintf(stderr, "cannot read /proc/self/smaps\n");
        exit(2);
    }
    char line[4096];
    int in = 0;
    long kb = 0;
    *found = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, ':') &&
            line[strspn(line, "0123456789abcdef")] == '-') {
            in = strstr(line, name) != NULL;
            *found |= in;
        } else if (in && strncmp(line, "Rss:", 4) == 0) {
            kb += atol(line + 4);
        }
    }
    fclose(f);
    return kb;
}

int main(void) {
    for (int i = 0; i < 1000; i++)
        free(malloc((size_t)(i % 200) * 16 + 1));
    int found_lib, found_gcc;
    long lib_kb = mapped_resident_kb("libmapalloc", &found_lib);
    mapped_resident_kb("libgcc_s", &found_gcc);
    printf("libmapalloc.so resident: %ld KiB; libgcc_s loaded: %s\n", lib_kb,
           found_gcc ? "yes" : "no");
    check(found_lib, "libmapalloc.so is not mapped: not running under the preload");
    check(lib_kb <= 160, "libmapalloc.so's own resident pages above 160 KiB");
    check(!found_gcc, "libgcc_s.so is loaded");

    size_t before = rss_bytes();
    for (int round = 0; round < 8; round++) {
        size_t n = 64 * KIB;
        char *p = malloc(n);
        check(p != NULL, "malloc failed");
        memset(p, round + 1, n);
        while (n + n / 8 <= 512 * KIB) {
            size_t m = n + n / 8;
            p = realloc(p, m);
            check(p != NULL, "realloc failed");
            if (!p)
                return 1;
            check(p[n - 1] == (char)(round + 1), "realloc lost the contents");
            memset(p + n, round + 1, m - n);
            n = m;
        }
        free(p);
    }
    size_t grown = rss_bytes() - before;
    printf("growing vector: resident set grew by %zu KiB\n", grown / KIB);
    const char *strict = getenv("MAPALLOC_STRICT");
    if (!strict || strcmp(strict, "1") != 0)
        check(grown <= 2 * MIB, "growing a block through the size classes kept more than 2 MiB resident");
    if (failed)
        return 1;
    printf("ok\n");
    return 0;
}
