/* The fast path's instruction counts, measured by tests/fast_path_budget.rs under
 * `valgrind --tool=callgrind --toggle-collect=measure_*`: each measure_* function runs N
 * operations on warm pages of one size class, so its inclusive instruction count divided by
 * N is the cost of one operation (plus about three instructions of loop).
 */
#include <stdio.h>
#include <stdlib.h>

#define N 100000
static void *ptrs[N];

#define PHASES(tag)                                                                        \
    __attribute__((noinline)) void tag##_pairs(size_t size) {                              \
        for (int i = 0; i < N; i++) {                                                      \
            void *p = malloc(size);                                                        \
            __asm__ volatile("" : : "r"(p) : "memory");                                    \
            free(p);                                                                       \
        }                                                                                  \
    }                                                                                      \
    __attribute__((noinline)) void tag##_malloc(size_t size) {                             \
        for (int i = 0; i < N; i++) ptrs[i] = malloc(size);                                \
    }                                                                                      \
    __attribute__((noinline)) void tag##_free(void) {                                      \
        for (int i = 0; i < N; i++) free(ptrs[i]);                                         \
    }

PHASES(warm)
PHASES(measure)

int main(int argc, char **argv) {
    size_t size = argc > 1 ? (size_t)atoi(argv[1]) : 48;
    /* Warm up: the heap exists and the class has pages, touched, for N blocks. */
    warm_malloc(size);
    warm_free();
    warm_pairs(size);
    warm_malloc(size);
    warm_free();
    warm_malloc(size);
    warm_free();
    measure_pairs(size);
    measure_malloc(size);
    measure_free();
    puts("ok");
    return 0;
}
