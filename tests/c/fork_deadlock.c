/*
 * fork_deadlock.c - fork while other threads hold stdio locks and allocate.
 *
 * The cycle glibc's own fork-deadlock test looks for: one thread reads lines
 * with getline (it holds the FILE's lock while getline's realloc grows the
 * line buffer), one calls fflush(NULL) in a loop (it holds libc's list lock,
 * then takes each FILE's lock), two more malloc/realloc/free blocks of every
 * size class family (small, medium, large), and the main thread forks
 * repeatedly. An allocator whose pthread_atfork prepare handler takes its
 * own locks deadlocks here: the forking thread holds them and waits inside
 * fork() for the list lock, the fflush thread holds that and waits for the
 * FILE lock, and the getline thread holds the FILE lock and waits in
 * realloc for the allocator's lock.
 *
 * Each child allocates, frees blocks that the other (now absent) threads
 * allocated before the fork, uses stdio and exits; the parent checks its
 * exit status. alarm(WATCHDOG) kills a hung parent, alarm(CHILD_WATCHDOG) a
 * hung child (the default SIGALRM action): the caller sees a failure.
 *
 * Usage: fork_deadlock [forks]   (default 10; the old prepare-handler design
 * hung in every run of 10 forks here)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WATCHDOG 20
#define CHILD_WATCHDOG 5
#define SHARED 64

static atomic_int stop;
static char path[64];
/* Blocks handed over by the allocating threads, freed by each child. */
static _Atomic(void *) shared[SHARED];

static void fail(const char *what)
{
    fprintf(stderr, "fork_deadlock: %s (errno %d)\n", what, errno);
    exit(1);
}

static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        FILE *f = fopen(path, "r");
        if (!f)
            fail("fopen for reading");
        char *line = NULL; /* a fresh buffer each pass: getline reallocs it */
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0)
            ;
        free(line);
        fclose(f);
    }
    return NULL;
}

static void *flusher(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        fflush(NULL);
    return NULL;
}

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t pick_size(uint64_t *s)
{
    uint64_t r = next(s);
    switch (r % 8) {
    case 0:
        return 200000 + r % 900000; /* medium and large */
    case 1:
    case 2:
        return 4096 + r % 60000;
    default:
        return 1 + r % 1024;
    }
}

static void *churner(void *arg)
{
    uint64_t s = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    void *slots[32] = {0};
    while (!atomic_load(&stop)) {
        unsigned i = next(&s) % 32;
        size_t n = pick_size(&s);
        if (slots[i] && next(&s) % 2) {
            void *q = realloc(slots[i], n);
            if (!q)
                fail("realloc");
            slots[i] = q;
        } else {
            free(slots[i]);
            slots[i] = malloc(n);
            if (!slots[i])
                fail("malloc");
        }
        memset(slots[i], 0x5a, n < 64 ? n : 64);
        /* Hand a block over for the children to free, taking back the old one. */
        unsigned k = next(&s) % SHARED;
        void *give = malloc(pick_size(&s));
        if (!give)
            fail("malloc");
        free(atomic_exchange(&shared[k], give));
    }
    for (unsigned i = 0; i < 32; i++)
        free(slots[i]);
    return NULL;
}

static void child(void)
{
    alarm(CHILD_WATCHDOG);
    for (unsigned k = 0; k < SHARED; k++) {
        free(atomic_load(&shared[k]));
        atomic_store(&shared[k], NULL);
    }
    uint64_t s = (uint64_t)getpid() * 2654435761u + 7;
    void *keep[16];
    for (unsigned i = 0; i < 16; i++) {
        size_t n = pick_size(&s);
        keep[i] = malloc(n);
        if (!keep[i])
            _exit(3);
        memset(keep[i], 1, n);
    }
    for (unsigned i = 0; i < 16; i++)
        free(keep[i]);
    char *line = NULL;
    size_t cap = 0;
    FILE *f = fopen(path, "r");
    if (!f || getline(&line, &cap, f) <= 0)
        _exit(4);
    free(line);
    fclose(f);
    FILE *null = fopen("/dev/null", "w");
    if (!null)
        _exit(5);
    fprintf(null, "child %d %s\n", (int)getpid(), "done");
    fclose(null);
    fflush(NULL);
    _exit(0);
}

int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 10;
    alarm(WATCHDOG);
    snprintf(path, sizeof path, "/tmp/fork_deadlock.%d", (int)getpid());
    FILE *w = fopen(path, "w");
    if (!w)
        fail("fopen for writing");
    /* Lines of growing length, so that getline grows its buffer several times. */
    for (int len = 16; len <= (1 << 21); len *= 2) {
        for (int i = 0; i < len; i++)
            fputc('a' + i % 26, w);
        fputc('\n', w);
    }
    fclose(w);

    pthread_t t[4];
    if (pthread_create(&t[0], NULL, reader, NULL) || pthread_create(&t[1], NULL, flusher, NULL) ||
        pthread_create(&t[2], NULL, churner, (void *)1) ||
        pthread_create(&t[3], NULL, churner, (void *)2))
        fail("pthread_create");

    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid < 0)
            fail("fork");
        if (pid == 0)
            child();
        int st;
        while (waitpid(pid, &st, 0) < 0)
            if (errno != EINTR)
                fail("waitpid");
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "fork_deadlock: child %d of %d: %s %d\n", i, forks,
                    WIFEXITED(st) ? "exit" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            unlink(path);
            return 1;
        }
        usleep(1000);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (unsigned k = 0; k < SHARED; k++)
        free(atomic_load(&shared[k]));
    unlink(path);
    printf("ok %d forks\n", forks);
    return 0;
}
