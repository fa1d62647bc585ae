/* Heap profiling (issue 19): known leaks from known functions, under MAPALLOC_PROF.
 *
 *   prof_leaks leaks [SCALE]  leak_a/leak_b/leak_c leak SCALE x 4 MB, 3 MB and 2 MB (blocks of
 *                             1000 B, 20000 B and 100000 B: small, medium and large), no_leak
 *                             allocates SCALE x 13 MB and frees all of it
 *   prof_leaks threads        4 threads leak 500 x 2000 B each in thread_leak and exit; main
 *                             frees half of them; a forked child leaks 100 x 5000 B in
 *                             child_leak and frees the blocks of threads 0 and 1, then exits
 *   prof_leaks signal         leaks, then raise(SIGUSR2), then leaks as much again
 *   prof_leaks dump PATH      leaks, then mapalloc_profile_dump(PATH): prints its result
 *
 * Prints "done" at the end (the child of "threads" prints "child done"). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

static void touch(char *p, size_t n) {
    if (!p) {
        fprintf(stderr, "malloc(%zu) failed\n", n);
        exit(3);
    }
    p[0] = 1;
    p[n - 1] = 2;
    sink = p;
}

__attribute__((noinline)) void leak_a(int scale) {
    for (int i = 0; i < 4000 * scale; i++) {
        char *p = malloc(1000);
        touch(p, 1000);
    }
}

__attribute__((noinline)) void leak_b(int scale) {
    for (int i = 0; i < 150 * scale; i++) {
        char *p = malloc(20000);
        touch(p, 20000);
    }
}

__attribute__((noinline)) void leak_c(int scale) {
    for (int i = 0; i < 20 * scale; i++) {
        char *p = calloc(1, 100000);
        touch(p, 100000);
    }
}

__attribute__((noinline)) void no_leak(int scale) {
    for (int i = 0; i < 10000 * scale; i++) {
        char *p = malloc(700);
        touch(p, 700);
        free(p);
    }
    for (int i = 0; i < 20 * scale; i++) {
        char *p = malloc(300000);
        touch(p, 300000);
        p = realloc(p, 310000);
        touch(p, 310000);
        free(p);
    }
}

enum { THREADS = 4, PER_THREAD = 500 };
static char *blocks[THREADS][PER_THREAD];

__attribute__((noinline)) void thread_leak(int t) {
    for (int i = 0; i < PER_THREAD; i++) {
        blocks[t][i] = malloc(2000);
        touch(blocks[t][i], 2000);
    }
}

static void *thread_main(void *arg) {
    thread_leak((int)(intptr_t)arg);
    return NULL;
}

__attribute__((noinline)) void child_leak(void) {
    for (int i = 0; i < 100; i++) {
        char *p = malloc(5000);
        touch(p, 5000);
    }
}

static void leaks(int scale) {
    leak_a(scale);
    leak_b(scale);
    leak_c(scale);
    no_leak(scale);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "leaks";
    if (strcmp(mode, "leaks") == 0) {
        leaks(argc > 2 ? atoi(argv[2]) : 1);
    } else if (strcmp(mode, "threads") == 0) {
        pthread_t th[THREADS];
        for (int t = 0; t < THREADS; t++) {
            if (pthread_create(&th[t], NULL, thread_main, (void *)(intptr_t)t) != 0) {
                return 4;
            }
        }
        for (int t = 0; t < THREADS; t++) {
            pthread_join(th[t], NULL);
        }
        /* Freed by another thread than the one that allocated them, after it exited. */
        for (int t = 0; t < THREADS; t++) {
            for (int i = 0; i < PER_THREAD / 2; i++) {
                free(blocks[t][i]);
            }
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            return 5;
        }
        if (pid == 0) {
            child_leak();
            for (int t = 0; t < 2; t++) {
                for (int i = PER_THREAD / 2; i < PER_THREAD; i++) {
                    free(blocks[t][i]);
                }
            }
            puts("child done");
            exit(0);
        }
        int st = 0;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "child failed: status %d\n", st);
            return 6;
        }
    } else if (strcmp(mode, "signal") == 0) {
        leak_a(1);
        raise(SIGUSR2);
        leak_b(1);
    } else if (strcmp(mode, "dump") == 0 && argc > 2) {
        leak_a(1);
        int (*dump)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "mapalloc_profile_dump");
        if (!dump) {
            puts("no mapalloc_profile_dump");
            return 7;
        }
        errno = 0;
        int r = dump(argv[2]);
        printf("dump=%d errno=%d\n", r, r ? errno : 0);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    puts("done");
    return 0;
}
