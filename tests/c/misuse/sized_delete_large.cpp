/* A 1 MiB block (a large block, mapped on its own) released with the size
 * of a 256 KiB object. */
#include <new>
#include "misuse.h"

int main(void)
{
    void *p = launder(::operator new(1 << 20));
    announce(p);
    ::operator delete(p, static_cast<std::size_t>(256 * 1024));
    survived();
}
