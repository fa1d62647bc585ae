/* As guard_large_overflow, in a process that called mlockall(MCL_FUTURE):
 * the kernel refuses guard markers in locked mappings (EINVAL), so this
 * exercises the mprotect fallback of the guard helper. Needs CAP_IPC_LOCK
 * or a memlock limit of some tens of MiB (segments are mapped locked). */
#include <malloc.h>
#include <sys/mman.h>
#include "misuse.h"

int main(void)
{
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        perror("mlockall");
        return 2;
    }
    char *p = malloc((1 << 20) + 100);
    if (p == NULL) {
        fprintf(stderr, "malloc failed: memlock limit too low?\n");
        return 2;
    }
    size_t n = malloc_usable_size(p);
    memset(p, 1, n);
    report_faults();
    announce_as("expect", p + n);
    /* Flip the byte rather than store a constant: in strict mode the slack holds random canary
     * bytes, and a store of the value already there would change nothing. */
    volatile char *q = launder(p);
    q[n] = (char)~q[n];
    /* Strict mode keeps a canary in slack after the usable size: the free reports it. */
    free(launder(p));
    survived();
}
