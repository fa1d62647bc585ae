/* A block from plain new released with the aligned delete of 4096-byte
 * alignment, which the block lacks. */
#include <new>
#include "misuse.h"

int main(void)
{
    void *keep[8];
    void *p = NULL;
    for (int i = 0; i < 8; i++) {
        keep[i] = ::operator new(48);
        if (reinterpret_cast<uintptr_t>(keep[i]) % 4096 != 0) {
            p = keep[i];
            break;
        }
    }
    if (p == NULL)
        return 2;
    announce(p);
    ::operator delete(launder(p), std::align_val_t(4096));
    survived();
}
