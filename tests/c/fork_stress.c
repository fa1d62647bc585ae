/*
 * fork_stress.c - fork while other threads are inside the allocator.
 *
 * NWORKERS threads allocate, check and free in a tight loop while main
 * forks NFORKS times. Each child (a single-threaded copy of a process whose
 * allocator may have been busy in other threads at the moment of fork)
 * must be able to: free blocks main allocated before the fork, run a few
 * thousand malloc/realloc/free, call libc functions that allocate
 * internally (snprintf with a long result, strdup, asprintf, fopen, qsort,
 * getline), start and join a thread, and fork a grandchild. It then
 * _exit(0)s. A deadlocked child is killed by its own alarm(); the parent
 * also gives up on a child after a deadline (SIGALRM interrupting
 * waitpid), kills it and fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NWORKERS 3
#define NFORKS 50
#define CHILD_ALARM 20   /* seconds a child may take before its alarm kills it */
#define PARENT_DEADLINE 30 /* seconds the parent waits for one child */
#define MAIN_BLOCKS 64

static int stop;
static int worker_failed;
static long worker_rounds[NWORKERS];

static uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static size_t pick_size(uint64_t r)
{
    switch (r % 8) {
    case 0: return (r >> 8) % 16;
    case 1: case 2: case 3: return (r >> 8) % 512;
    case 4: case 5: return (r >> 8) % 8192;
    case 6: return (r >> 8) % 100000;
    default: return (r >> 8) % 2000000;
    }
}

struct blk {
    unsigned char *p;
    size_t n;
    unsigned char tag;
};

/* fill/check the first and last 256 bytes (enough to catch overlap) */
static void blk_fill(struct blk *b)
{
    size_t k = b->n < 256 ? b->n : 256;
    memset(b->p, b->tag, k);
    memset(b->p + b->n - k, b->tag, k);
}

static int blk_ok(const struct blk *b)
{
    size_t k = b->n < 256 ? b->n : 256;
    for (size_t i = 0; i < k; i++)
        if (b->p[i] != b->tag || b->p[b->n - k + i] != b->tag)
            return 0;
    return 1;
}

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint64_t rng = 0x5EED0000ull + (uint64_t)me;
    struct blk ring[64];
    memset(ring, 0, sizeof ring);
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        uint64_t r = xs(&rng);
        struct blk *b = &ring[r % 64];
        if (b->p) {
            if (!blk_ok(b)) {
                fprintf(stderr, "FAIL fork_stress: worker %d: block of %zu bytes corrupted\n", me, b->n);
                __atomic_store_n(&worker_failed, 1, __ATOMIC_RELAXED);
            }
            if ((r >> 8) % 4 == 0) {
                size_t n2 = pick_size(r >> 11) + 1;
                unsigned char *p2 = realloc(b->p, n2);
                if (p2 == NULL) {
                    fprintf(stderr, "FAIL fork_stress: worker realloc(%zu) failed\n", n2);
                    __atomic_store_n(&worker_failed, 1, __ATOMIC_RELAXED);
                    free(b->p);
                    b->p = NULL;
                    continue;
                }
                b->p = p2;
                b->n = n2;
                blk_fill(b);
                continue;
            }
            free(b->p);
            b->p = NULL;
        } else {
            b->n = pick_size(r >> 8) + 1;
            b->tag = (unsigned char)(r >> 56);
            b->p = malloc(b->n);
            if (b->p == NULL) {
                fprintf(stderr, "FAIL fork_stress: worker malloc(%zu) failed\n", b->n);
                __atomic_store_n(&worker_failed, 1, __ATOMIC_RELAXED);
                continue;
            }
            blk_fill(b);
        }
        worker_rounds[me]++;
    }
    for (int i = 0; i < 64; i++)
        free(ring[i].p);
    return NULL;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

static void *child_thread(void *arg)
{
    (void)arg;
    void *ps[500];
    for (int i = 0; i < 500; i++) {
        ps[i] = malloc((size_t)(i * 37 % 3000) + 1);
        if (ps[i] == NULL)
            return (void *)1;
        memset(ps[i], i & 0xFF, (size_t)(i * 37 % 3000) + 1);
    }
    for (int i = 0; i < 500; i++)
        free(ps[i]);
    return NULL;
}

#define CHILD_FAIL(...)                                                        \
    do {                                                                       \
        fprintf(stderr, "FAIL fork_stress child: " __VA_ARGS__);               \
        fputc('\n', stderr);                                                   \
        _exit(3);                                                              \
    } while (0)

static void child(int iteration, struct blk *main_blocks)
{
    /* the parent's no-op SIGALRM handler is inherited: restore the default
     * action so that the alarm kills a hung child */
    signal(SIGALRM, SIG_DFL);
    alarm(CHILD_ALARM);
    /* blocks main allocated before the fork: intact, and freeable here */
    for (int i = 0; i < MAIN_BLOCKS; i++) {
        if (!blk_ok(&main_blocks[i]))
            CHILD_FAIL("inherited block %d corrupted", i);
        if (i % 2 == 0) {
            free(main_blocks[i].p);
            main_blocks[i].p = NULL;
        }
    }
    uint64_t rng = 0xC41D0000ull + (uint64_t)iteration;
    struct blk live[128];
    memset(live, 0, sizeof live);
    for (int i = 0; i < 3000; i++) {
        uint64_t r = xs(&rng);
        struct blk *b = &live[r % 128];
        if (b->p) {
            if (!blk_ok(b))
                CHILD_FAIL("block of %zu bytes corrupted", b->n);
            free(b->p);
            b->p = NULL;
        }
        b->n = pick_size(r >> 8) % 50000 + 1;
        b->tag = (unsigned char)(r >> 48);
        b->p = malloc(b->n);
        if (b->p == NULL)
            CHILD_FAIL("malloc(%zu) failed", b->n);
        blk_fill(b);
        if (i % 5 == 0) {
            size_t n2 = b->n * 2 + 10;
            unsigned char *p2 = realloc(b->p, n2);
            if (p2 == NULL)
                CHILD_FAIL("realloc(%zu) failed", n2);
            b->p = p2;
            b->n = n2;
            blk_fill(b);
        }
    }
    for (int i = 0; i < 128; i++)
        free(live[i].p);
    for (int i = 1; i < MAIN_BLOCKS; i += 2)
        free(main_blocks[i].p);

    /* libc functions that allocate internally */
    char *big = malloc(100000);
    if (big == NULL)
        CHILD_FAIL("malloc failed");
    memset(big, 'x', 99999);
    big[99999] = 0;
    char small[64];
    int len = snprintf(small, sizeof small, "%s%d", big, iteration); /* large internal work */
    if (len != 99999 + (iteration >= 10 ? 2 : 1))
        CHILD_FAIL("snprintf returned %d", len);
    char *dup = strdup(big);
    if (dup == NULL || strlen(dup) != 99999)
        CHILD_FAIL("strdup failed");
    char *as = NULL;
    if (asprintf(&as, "iteration %d %.5000s", iteration, big) < 0 || as == NULL)
        CHILD_FAIL("asprintf failed");
    free(as);
    free(dup);
    free(big);
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        CHILD_FAIL("fopen failed: %s", strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int lines = 0;
    while (getline(&line, &cap, f) > 0)
        lines++;
    free(line);
    fclose(f);
    if (lines == 0)
        CHILD_FAIL("read nothing from /proc/self/status");
    void *arr[300];
    for (int i = 0; i < 300; i++) {
        arr[i] = malloc(16);
        if (arr[i] == NULL)
            CHILD_FAIL("malloc failed");
    }
    qsort(arr, 300, sizeof arr[0], cmp_ptr);
    for (int i = 1; i < 300; i++)
        if (arr[i] == arr[i - 1])
            CHILD_FAIL("malloc returned %p twice", arr[i]);
    for (int i = 0; i < 300; i++)
        free(arr[i]);

    /* a thread in the child */
    pthread_t t;
    void *ret = NULL;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0)
        CHILD_FAIL("pthread_create failed");
    pthread_join(t, &ret);
    if (ret != NULL)
        CHILD_FAIL("child thread failed to allocate");

    /* a grandchild now and then */
    if (iteration % 10 == 0) {
        pid_t g = fork();
        if (g < 0)
            CHILD_FAIL("fork in child failed");
        if (g == 0) {
            void *p = malloc(12345);
            if (p == NULL)
                _exit(4);
            memset(p, 1, 12345);
            free(p);
            _exit(0);
        }
        int st;
        if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            CHILD_FAIL("grandchild failed (status %d)", st);
    }
    _exit(0);
}

static void on_alarm(int sig) { (void)sig; }

int main(void)
{
    /* SIGALRM interrupts the parent's waitpid; only main may receive it */
    sigset_t alrm, old;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alrm, &old);
    pthread_t w[NWORKERS];
    for (int i = 0; i < NWORKERS; i++)
        if (pthread_create(&w[i], NULL, worker, (void *)(intptr_t)i) != 0) {
            fprintf(stderr, "FAIL fork_stress: pthread_create failed\n");
            return 1;
        }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART: waitpid returns EINTR */
    sigaction(SIGALRM, &sa, NULL);

    int failed = 0;
    uint64_t rng = 42;
    for (int it = 0; it < NFORKS && !failed; it++) {
        struct blk mb[MAIN_BLOCKS];
        for (int i = 0; i < MAIN_BLOCKS; i++) {
            uint64_t r = xs(&rng);
            mb[i].n = pick_size(r) + 1;
            mb[i].tag = (unsigned char)(r >> 40);
            mb[i].p = malloc(mb[i].n);
            if (mb[i].p == NULL) {
                fprintf(stderr, "FAIL fork_stress: malloc failed\n");
                return 1;
            }
            blk_fill(&mb[i]);
        }
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "FAIL fork_stress: fork failed: %s\n", strerror(errno));
            failed = 1;
            break;
        }
        if (pid == 0)
            child(it, mb);

        alarm(PARENT_DEADLINE);
        int st = 0;
        pid_t r;
        for (;;) {
            r = waitpid(pid, &st, 0);
            if (r >= 0 || errno != EINTR)
                break;
            unsigned left = alarm(0);
            if (left == 0)
                break; /* our deadline passed */
            alarm(left); /* some other signal: keep waiting */
        }
        alarm(0);
        if (r != pid) {
            fprintf(stderr, "FAIL fork_stress: child %d (iteration %d) did not finish within %d s; killed\n", (int)pid,
                    it, PARENT_DEADLINE);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            failed = 1;
        } else if (WIFSIGNALED(st)) {
            fprintf(stderr, "FAIL fork_stress: child (iteration %d) killed by signal %d%s\n", it, WTERMSIG(st),
                    WTERMSIG(st) == SIGALRM ? " (its alarm: deadlock?)" : "");
            failed = 1;
        } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "FAIL fork_stress: child (iteration %d) exited with status %d\n", it, WEXITSTATUS(st));
            failed = 1;
        }
        for (int i = 0; i < MAIN_BLOCKS; i++) {
            if (!blk_ok(&mb[i])) {
                fprintf(stderr, "FAIL fork_stress: parent block %d corrupted after fork\n", i);
                failed = 1;
            }
            free(mb[i].p);
        }
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(w[i], NULL);
    if (failed || worker_failed)
        return 1;
    long rounds = 0;
    for (int i = 0; i < NWORKERS; i++)
        rounds += worker_rounds[i];
    fprintf(stderr, "fork_stress: worker rounds %ld\n", rounds);
    printf("forks=%d ok\n", NFORKS);
    printf("ok\n");
    return 0;
}
