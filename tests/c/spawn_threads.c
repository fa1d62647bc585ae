/*
 * spawn_threads.c - posix_spawn, system and popen from a multi-threaded
 * program while other threads allocate.
 *
 * glibc's posix_spawn (and system, popen, built on it) runs the child on a
 * clone(CLONE_VM | CLONE_VFORK) that shares the parent's memory and runs no
 * pthread_atfork handler: the allocator's state stays the parent's, and the
 * parent's threads go on allocating meanwhile. Nothing may hang or crash.
 * alarm(WATCHDOG) kills a hung run (the default SIGALRM action).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WATCHDOG 60
#define THREADS 3

extern char **environ;
static atomic_int stop;

static void fail(const char *what)
{
    fprintf(stderr, "spawn_threads: %s (errno %d)\n", what, errno);
    exit(1);
}

static void *churner(void *arg)
{
    uint64_t s = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    void *slots[64] = {0};
    while (!atomic_load(&stop)) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        unsigned i = s % 64;
        size_t n = s % 16 == 0 ? 100000 + s % 400000 : 1 + s % 2000;
        free(slots[i]);
        slots[i] = malloc(n);
        if (!slots[i])
            fail("malloc");
        memset(slots[i], 0x33, n < 128 ? n : 128);
    }
    for (unsigned i = 0; i < 64; i++)
        free(slots[i]);
    return NULL;
}

static void wait_ok(pid_t pid, const char *what)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            fail("waitpid");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail(what);
}

int main(void)
{
    alarm(WATCHDOG);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, churner, (void *)(i + 1)))
            fail("pthread_create");
    int spawned = 0, systems = 0, popens = 0;
    for (int round = 0; round < 20; round++) {
        for (int k = 0; k < 5; k++) {
            pid_t pid;
            char *argv[] = {"true", NULL};
            int rc = posix_spawnp(&pid, "true", NULL, NULL, argv, environ);
            if (rc != 0) {
                errno = rc;
                fail("posix_spawnp");
            }
            wait_ok(pid, "spawned child failed");
            spawned++;
        }
        if (system("exit 0") != 0)
            fail("system");
        systems++;
        FILE *p = popen("echo spawned", "r");
        if (!p)
            fail("popen");
        char *line = NULL;
        size_t cap = 0;
        if (getline(&line, &cap, p) <= 0 || strcmp(line, "spawned\n") != 0)
            fail("popen output");
        free(line);
        if (pclose(p) != 0)
            fail("pclose");
        popens++;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("ok %d posix_spawn, %d system, %d popen\n", spawned, systems, popens);
    return 0;
}
