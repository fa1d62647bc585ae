/* measure: runs one command and reports its wall time and rusage, for benches/compare.
 *
 *   measure RESULT_FILE PRELOAD COMMAND [ARGS...]
 *
 * Forks, runs COMMAND with LD_PRELOAD=PRELOAD in its environment (none if PRELOAD is empty;
 * measure itself never runs under the allocator being measured), waits for it with wait4 and
 * writes one line to RESULT_FILE:
 *
 *   seconds peak_rss_kib user_seconds sys_seconds exit minor_faults major_faults
 *
 * where exit is the exit status, or minus the signal number that killed the command, and the
 * faults are wait4's ru_minflt and ru_majflt (the start-up pass of compare reads them; the
 * first five fields came first and keep their places).
 * measure's own exit status is 0 when that line was written.
 *
 * Why a C launcher: Linux keeps a process's RSS high-water mark across fork and exec
 * (ru_maxrss of a child starts at the RSS of the process it was forked from), so a workload
 * spawned directly by the Python runner would report at least the runner's ~20 MiB. Forked
 * from this small program, it starts at about 1 MiB.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: measure RESULT_FILE PRELOAD COMMAND [ARGS...]\n");
        return 2;
    }
    /* The command's environment: ours without LD_PRELOAD, plus PRELOAD if given. */
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof(char *));
    if (!env)
        return 2;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
            env[k++] = environ[i];
    char *preload = NULL;
    if (argv[2][0]) {
        preload = malloc(strlen(argv[2]) + 12);
        if (!preload)
            return 2;
        sprintf(preload, "LD_PRELOAD=%s", argv[2]);
        env[k++] = preload;
    }
    env[k] = NULL;

    double start = now();
    pid_t pid = fork();
    if (pid < 0) {
        perror("measure: fork");
        return 2;
    }
    if (pid == 0) {
        execvpe(argv[3], &argv[3], env);
        fprintf(stderr, "measure: cannot run %s: %s\n", argv[3], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR) {
            perror("measure: wait4");
            return 2;
        }
    double seconds = now() - start;
    int code = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror("measure: result file");
        return 2;
    }
    fprintf(f, "%.6f %ld %.6f %.6f %d %ld %ld\n", seconds, ru.ru_maxrss,
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6,
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6, code, ru.ru_minflt,
            ru.ru_majflt);
    free(preload);
    free(env);
    return fclose(f) == 0 ? 0 : 2;
}
