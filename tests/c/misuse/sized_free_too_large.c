/* free_sized (C23) with a size larger than the block. glibc 2.36 has no
 * free_sized, so it is looked up at run time (the preloaded library's). */
#include <dlfcn.h>
#include "misuse.h"

int main(void)
{
    void (*free_sized)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    if (free_sized == NULL) {
        fprintf(stderr, "no free_sized\n");
        return 2;
    }
    char *p = malloc(48);
    announce(p);
    free_sized(launder(p), 4096);
    survived();
}
