/* Purges in a process whose memory is locked (mlockall(MCL_CURRENT | MCL_FUTURE)), where
 * MADV_DONTNEED fails with EINVAL: mapalloc used to abort with "madvise failed unexpectedly
 * (errno 22)" at the first purge.
 *
 * Raises RLIMIT_MEMLOCK (to infinity where allowed, else to its hard limit), locks
 * everything, then for a few rounds fills small, medium and large blocks with a pattern,
 * checks it, frees them all and purges (MAPALLOC_PURGE_DELAY_MS=0, and malloc_trim(0), which
 * purges the heap's free pages in one batch and unmaps or purges the caches). Afterwards
 * calloc'd blocks must read zero (purged pages are reused without a memset, so this checks
 * that the purge zeroed them) and malloc'd ones must hold what was written. Prints the locked
 * size (VmLck) and "ok"; "skipped: ..." when mlockall is refused (EPERM, ENOMEM).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define ROUNDS 4
#define N 3000

static const size_t sizes[] = {48, 700, 5000, 48 * 1024, 200 * 1024, 1024 * 1024 + 3};

static size_t size_of(int i) { return sizes[i % (int)(sizeof sizes / sizeof sizes[0])]; }

static long vm_lck_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmLck: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static void *blocks[N];

int main(void) {
    struct rlimit lim = {RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_MEMLOCK, &lim) != 0 && getrlimit(RLIMIT_MEMLOCK, &lim) == 0) {
        /* Not privileged (or a container without CAP_SYS_RESOURCE): as far as allowed. */
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_MEMLOCK, &lim);
    }
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        int e = errno;
        if (e == EPERM || e == ENOMEM) {
            printf("skipped: mlockall: %s\n", strerror(e));
            return 0;
        }
        fprintf(stderr, "mlockall: %s\n", strerror(e));
        return 1;
    }
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++) {
            size_t n = size_of(i + round);
            unsigned char *p = round % 2 ? calloc(1, n) : malloc(n);
            if (!p) {
                fprintf(stderr, "round %d: allocation %d of %zu bytes failed\n", round, i, n);
                return 1;
            }
            if (round % 2) {
                for (size_t k = 0; k < n; k++)
                    if (p[k] != 0) {
                        fprintf(stderr, "round %d: calloc block %d (%zu bytes) reads %#x at %zu\n",
                                round, i, n, p[k], k);
                        return 1;
                    }
            }
            memset(p, (i + round) & 0xff, n);
            blocks[i] = p;
        }
        for (int i = 0; i < N; i++) {
            unsigned char *p = blocks[i];
            size_t n = size_of(i + round);
            if (p[0] != ((i + round) & 0xff) || p[n - 1] != ((i + round) & 0xff)) {
                fprintf(stderr, "round %d: block %d lost its contents\n", round, i);
                return 1;
            }
        }
        /* Free every other block first, so that trim finds scattered free pages. */
        for (int i = 0; i < N; i += 2)
            free(blocks[i]);
        for (int i = 1; i < N; i += 2)
            free(blocks[i]);
        malloc_trim(0);
    }
    long kib = vm_lck_kib();
    if (kib <= 0) {
        fprintf(stderr, "VmLck is %ld kB after mlockall\n", kib);
        return 1;
    }
    printf("VmLck %ld kB\nok\n", kib);
    return 0;
}
