/* Deleting a 4 KiB object through a pointer to its 8-byte base class
 * without a virtual destructor: sized delete passes sizeof(Base), the size
 * of another class than the block's. */
#include "misuse.h"

struct Base {
    long id;
};
struct Derived : Base {
    char payload[4096];
};

int main(void)
{
    Base *b = static_cast<Base *>(launder(new Derived()));
    announce(b);
    delete b;
    survived();
}
