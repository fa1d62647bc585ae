/* new[] of 1000 ints released with scalar delete: sized delete passes
 * sizeof(int) for a block of 4000 bytes. */
#include "misuse.h"

int main(void)
{
    int *a = static_cast<int *>(launder(new int[1000]));
    announce(a);
    delete a;
    survived();
}
