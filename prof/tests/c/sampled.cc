// A sampled heap profile (heap_v2) from gperftools' tcmalloc: with
// TCMALLOC_SAMPLE_PARAMETER=524288 tcmalloc samples about one allocation per 512 KiB, and
// MallocExtension::GetHeapSample writes the sampled live blocks in the format mapalloc uses
// for MAPALLOC_PROF=1. tests/gperftools.rs checks mapalloc-prof's estimates on it.
#include <gperftools/malloc_extension.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

enum { SMALL_COUNT = 100000, SMALL_SIZE = 1000, BIG_COUNT = 8, BIG_SIZE = 4 << 20 };

static void *volatile sink[SMALL_COUNT + BIG_COUNT];
static unsigned n;

static void keep(void *p, size_t size) {
    if (!p) {
        std::perror("malloc");
        std::exit(1);
    }
    std::memset(p, 0x5a, size);
    sink[n++] = p;
}

// 100 MB in 1000-byte blocks: about 190 samples, each standing for ~525 blocks.
__attribute__((noinline)) void leak_many_small_blocks() {
    for (int i = 0; i < SMALL_COUNT; i++) keep(std::malloc(SMALL_SIZE), SMALL_SIZE);
}

// 32 MiB in 4 MiB blocks: each is sampled with probability 1 - e^-8.
__attribute__((noinline)) void leak_big_blocks() {
    for (int i = 0; i < BIG_COUNT; i++) keep(std::malloc(BIG_SIZE), BIG_SIZE);
}

__attribute__((noinline)) void free_everything() {
    for (int i = 0; i < 50000; i++) {
        void *volatile p = std::malloc(1000);
        std::memset(p, 1, 1000);
        std::free(p);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: sampled OUT.heap\n");
        return 2;
    }
    leak_many_small_blocks();
    leak_big_blocks();
    free_everything();
    std::string profile;
    MallocExtension::instance()->GetHeapSample(&profile);
    FILE *f = std::fopen(argv[1], "w");
    if (!f || std::fwrite(profile.data(), 1, profile.size(), f) != profile.size() || std::fclose(f)) {
        std::perror(argv[1]);
        return 1;
    }
    return 0;
}
