/* Three functions that leak known amounts and one that frees all it allocates; run under
 * gperftools' heap profiler by tests/gperftools.rs, which checks that mapalloc-prof gives
 * each its bytes. The pointers go to a volatile array so that the compiler cannot drop the
 * allocations (GCC removes a malloc whose block is never read). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A_COUNT 100
#define A_SIZE 10000
#define B_COUNT 10
#define B_SIZE 300000
#define C_SIZE 5000000

static void *volatile sink[A_COUNT + B_COUNT + 1];
static unsigned n;

static void keep(void *p, size_t size) {
    if (!p) {
        perror("malloc");
        exit(1);
    }
    memset(p, 0x5a, size);
    sink[n++] = p;
}

__attribute__((noinline)) void leak_small_blocks(void) {
    for (int i = 0; i < A_COUNT; i++) keep(malloc(A_SIZE), A_SIZE);
}

__attribute__((noinline)) void leak_medium_blocks(void) {
    for (int i = 0; i < B_COUNT; i++) keep(calloc(1, B_SIZE), B_SIZE);
}

__attribute__((noinline)) void leak_one_big_block(void) {
    keep(malloc(C_SIZE), C_SIZE);
}

__attribute__((noinline)) void free_everything(void) {
    void *volatile tmp[64];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 64; i++) {
            tmp[i] = malloc(20000);
            memset(tmp[i], 1, 20000);
        }
        for (int i = 0; i < 64; i++) free(tmp[i]);
    }
}

int main(void) {
    leak_small_blocks();
    leak_medium_blocks();
    leak_one_big_block();
    free_everything();
    printf("leaked %d bytes\n", A_COUNT * A_SIZE + B_COUNT * B_SIZE + C_SIZE);
    return 0;
}
