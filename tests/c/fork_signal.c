/*
 * fork_signal.c - fork from a signal handler that interrupted malloc/free.
 *
 * The process stays single-threaded (it never creates a thread). A
 * profiling timer (SIGPROF, every 500 us of CPU time) interrupts a tight
 * malloc/realloc/free loop; the handler forks, the child _exit(0)s at once
 * and the handler reaps it. glibc keeps this working by not taking its
 * allocator locks in a single-threaded process (glibc's tst-mallocfork);
 * an allocator whose pthread_atfork prepare handler takes a lock that the
 * interrupted malloc already holds hangs here. alarm(WATCHDOG) kills a hung
 * run (the default SIGALRM action), which the caller sees as a failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define NFORKS 200
#define WATCHDOG 20

static volatile sig_atomic_t forks_done;
static volatile sig_atomic_t bad_child;

static void on_prof(int sig)
{
    (void)sig;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid > 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad_child = 1;
        forks_done++;
    } else {
        bad_child = 2;
    }
    errno = saved;
}

int main(void)
{
    alarm(WATCHDOG);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prof;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGPROF, &sa, NULL);
    struct itimerval it = {{0, 500}, {0, 500}};
    if (setitimer(ITIMER_PROF, &it, NULL) != 0) {
        perror("setitimer");
        return 1;
    }
    uint64_t x = 88172645463325252ull;
    void *slots[256] = {0};
    unsigned long ops = 0;
    while (forks_done < NFORKS && !bad_child) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned i = (unsigned)(x % 256);
        size_t n = (x >> 8) % 4 == 0 ? (x >> 16) % 300000 + 1 : (x >> 16) % 600 + 1;
        if (slots[i] == NULL) {
            slots[i] = malloc(n);
            if (slots[i] == NULL) {
                fprintf(stderr, "FAIL fork_signal: malloc(%zu) failed\n", n);
                return 1;
            }
            memset(slots[i], 1, n < 64 ? n : 64);
        } else if ((x >> 40) % 3 == 0) {
            void *p = realloc(slots[i], n);
            if (p == NULL) {
                fprintf(stderr, "FAIL fork_signal: realloc(%zu) failed\n", n);
                return 1;
            }
            slots[i] = p;
        } else {
            free(slots[i]);
            slots[i] = NULL;
        }
        ops++;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
    for (int i = 0; i < 256; i++)
        free(slots[i]);
    if (bad_child) {
        fprintf(stderr, "FAIL fork_signal: %s\n", bad_child == 1 ? "a child failed" : "fork failed");
        return 1;
    }
    fprintf(stderr, "fork_signal: %lu allocator calls\n", ops);
    printf("forks=%d ok\n", (int)forks_done);
    printf("ok\n");
    return 0;
}
