/*
 * thread_exit.cpp - allocation and free around and after the allocator's own thread-exit hook.
 *
 * mapalloc abandons a thread's heap from a pthread key destructor, created at its first
 * malloc (before main), so it has a low key index. glibc, when a thread exits, first runs the
 * C++ thread_local destructors (__call_tls_dtors), then the key destructors in rounds, each
 * round in key-index order, at most PTHREAD_DESTRUCTOR_ITERATIONS (4) rounds. So:
 *
 *  A. thread_local objects whose destructors free what the thread allocated and allocate anew;
 *  B. a key created in main (higher index than mapalloc's) whose destructor runs right after
 *     mapalloc's hook in the same round: it frees blocks the thread allocated, allocates and
 *     frees more (C++ containers), re-arms itself for the next rounds and allocates there too;
 *  C. a thread that only frees blocks main allocated and never allocates;
 *  D. threads whose FIRST allocation happens in the last destructor round, after mapalloc's
 *     key was visited: mapalloc's hook never runs for them. Many such threads must not pile up
 *     heaps: the segments mapped (mallinfo2().arena) stay bounded. With the bug each thread
 *     kept a 4 MiB segment.
 *
 * Every block's contents are checked before it is freed. Prints "ok" on success; with
 * MAPALLOC_STATS=1 the allocator's summary at exit gives the heap counts, which the Rust side
 * checks too.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

static std::atomic<int> failures{0};
static std::atomic<long> tl_dtors{0}, key_rounds{0}, last_round_allocs{0}, only_free_blocks{0};

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "FAIL thread_exit: " __VA_ARGS__);                                 \
            fputc('\n', stderr);                                                               \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

struct Blk {
    unsigned char *p;
    size_t n;
    unsigned char tag;
};

static Blk blk_new(size_t n, unsigned char tag)
{
    Blk b{(unsigned char *)malloc(n), n, tag};
    if (b.p)
        memset(b.p, tag, n);
    return b;
}

static bool blk_ok(const Blk &b)
{
    if (!b.p)
        return false;
    for (size_t i = 0; i < b.n; i++)
        if (b.p[i] != b.tag)
            return false;
    return true;
}

static void blk_free(Blk &b, const char *what)
{
    CHECK(blk_ok(b), "%s: block of %zu bytes corrupted", what, b.n);
    free(b.p);
    b.p = nullptr;
}

/* ---- A: thread_local objects with allocating destructors ---- */

struct TlState {
    std::vector<std::string> names;
    std::map<int, std::vector<int>> table;
    Blk raw{};
    bool used = false;
    ~TlState()
    {
        if (!used)
            return;
        for (size_t i = 0; i < names.size(); i++)
            CHECK(names[i] == "name-" + std::to_string(i), "thread_local string %zu", i);
        for (auto &kv : table)
            CHECK(kv.second.size() == (size_t)kv.first + 1, "thread_local vector %d", kv.first);
        blk_free(raw, "thread_local raw block");
        names.clear();
        names.shrink_to_fit();
        /* allocate and free in the destructor */
        std::vector<std::unique_ptr<std::string>> tmp;
        for (int i = 0; i < 100; i++)
            tmp.emplace_back(new std::string(100 + i * 50, 'z'));
        for (int i = 0; i < 100; i++)
            CHECK(tmp[i]->size() == (size_t)(100 + i * 50), "string in thread_local dtor");
        Blk big = blk_new(300000, 0x5a);
        blk_free(big, "large block in thread_local dtor");
        tl_dtors++;
    }
};

static thread_local TlState tl;

/* ---- B: a key destructor after mapalloc's hook, re-armed over the rounds ---- */

static pthread_key_t after_key;

struct AfterState {
    Blk blocks[20];
    int rounds_left;
};

static void after_dtor(void *v)
{
    AfterState *st = (AfterState *)v;
    for (int i = 0; i < 20; i++)
        if (st->blocks[i].p)
            blk_free(st->blocks[i], "block freed in a key destructor");
    /* allocate and free here, after mapalloc's hook ran for this thread */
    std::vector<std::string> v2;
    for (int i = 0; i < 200; i++)
        v2.push_back(std::string(i % 97 + 1, 'a' + i % 26));
    for (int i = 0; i < 200; i++)
        CHECK(v2[i].size() == (size_t)(i % 97 + 1), "string in key destructor");
    for (int i = 0; i < 20; i++)
        st->blocks[i] = blk_new(16 + i * 300, (unsigned char)(i + st->rounds_left * 20));
    key_rounds++;
    if (--st->rounds_left > 0) {
        pthread_setspecific(after_key, st); /* one more round */
    } else {
        for (int i = 0; i < 20; i++)
            blk_free(st->blocks[i], "block freed in the last round");
        delete st;
    }
}

static void *worker_ab(void *arg)
{
    long id = (long)(intptr_t)arg;
    tl.used = true;
    for (int i = 0; i < 50; i++)
        tl.names.push_back("name-" + std::to_string(i));
    for (int i = 0; i < 20; i++)
        tl.table[i] = std::vector<int>(i + 1, (int)id);
    tl.raw = blk_new(5000 + id, (unsigned char)id);
    AfterState *st = new AfterState();
    for (int i = 0; i < 20; i++)
        st->blocks[i] = blk_new(32 + i * 100, (unsigned char)(id + i));
    st->rounds_left = 3; /* this round and two more */
    pthread_setspecific(after_key, st);
    return nullptr;
}

/* ---- C: a thread that only frees ---- */

static void *only_free(void *arg)
{
    std::vector<Blk> *blocks = (std::vector<Blk> *)arg;
    for (auto &b : *blocks) {
        if (blk_ok(b))
            only_free_blocks++;
        else
            failures++;
        free(b.p);
    }
    return nullptr;
}

/* ---- D: first allocation in the last destructor round ---- */

static pthread_key_t late_key;

static void late_dtor(void *v)
{
    uintptr_t left = (uintptr_t)v;
    if (left > 1) {
        pthread_setspecific(late_key, (void *)(left - 1));
        return;
    }
    /* round 4: this thread's first allocations */
    void *ps[100];
    for (int i = 0; i < 100; i++) {
        ps[i] = malloc(24 + i * 40);
        if (ps[i])
            memset(ps[i], i, 24 + i * 40);
    }
    for (int i = 0; i < 100; i++)
        free(ps[i]);
    last_round_allocs++;
}

static void *late_worker(void *)
{
    /* no allocation here: only arm the key for four rounds */
    pthread_setspecific(late_key, (void *)(uintptr_t)4);
    return nullptr;
}

static void run(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    if (pthread_create(&t, nullptr, fn, arg) != 0) {
        fprintf(stderr, "FAIL thread_exit: pthread_create\n");
        exit(1);
    }
    pthread_join(t, nullptr);
}

int main()
{
    void *first = malloc(1); /* mapalloc's key exists by now (index below ours) */
    free(first);
    if (pthread_key_create(&after_key, after_dtor) != 0 || pthread_key_create(&late_key, late_dtor) != 0) {
        fprintf(stderr, "FAIL thread_exit: pthread_key_create\n");
        return 1;
    }

    const int AB = 100;
    for (long i = 0; i < AB; i++)
        run(worker_ab, (void *)(intptr_t)i);
    CHECK(tl_dtors == AB, "thread_local destructors ran %ld times, not %d", tl_dtors.load(), AB);
    CHECK(key_rounds == 3 * AB, "key destructor rounds %ld, not %d", key_rounds.load(), 3 * AB);

    for (int r = 0; r < 20; r++) {
        std::vector<Blk> blocks;
        for (int i = 0; i < 100; i++)
            blocks.push_back(blk_new((size_t)(i * 131 % 20000) + 1, (unsigned char)(r + i)));
        run(only_free, &blocks);
    }
    CHECK(only_free_blocks == 2000, "only-free threads freed %ld intact blocks", only_free_blocks.load());

    size_t arena0 = mallinfo2().arena;
    const int LATE = 400;
    for (int i = 0; i < LATE; i++)
        run(late_worker, nullptr);
    size_t arena1 = mallinfo2().arena;
    CHECK(last_round_allocs == LATE, "%ld threads reached the last round, not %d", last_round_allocs.load(), LATE);
    /* Each leaked heap would keep (at least) one 4 MiB segment: LATE of them is 1.6 GB. */
    printf("late-round threads: %d, segments mapped before %zu MiB, after %zu MiB\n", LATE, arena0 >> 20,
           arena1 >> 20);
    CHECK(arena1 <= arena0 + ((size_t)400 << 20), "segments grew from %zu to %zu MiB", arena0 >> 20, arena1 >> 20);

    if (failures != 0)
        return 1;
    printf("ok\n");
    return 0;
}
