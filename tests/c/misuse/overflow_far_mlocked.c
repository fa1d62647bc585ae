/* As overflow_far_small_memset, in a process that called mlockall(MCL_FUTURE):
 * the kernel refuses guard markers in locked mappings, so the interior guards
 * are made with mprotect (the fallback, within its mapping budget). Needs
 * CAP_IPC_LOCK or a memlock limit of some tens of MiB (segments are mapped
 * locked, sixteen at a time). */
#include "misuse.h"
#include <sys/mman.h>

int main(void)
{
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        perror("mlockall");
        return 2;
    }
    char *p = block_mid_segment(8);
    report_faults();
    announce_as("low", p);
    announce_as("high", p + FAR);
    memset(launder(p), 2, FAR);
    survived();
}
