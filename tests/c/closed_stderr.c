/*
 * closed_stderr.c - mapalloc's messages and summary when the program has
 * closed its stderr (as `ls` does at exit).
 *
 * Usage: closed_stderr MODE [PATH]
 *   exit    allocate, close fd 2, exit: the summary (MAPALLOC_STATS=1) must
 *           still reach the original stderr;
 *   misuse  close fd 2, then free one block twice: the abort's message must
 *           still reach it;
 *   reuse   close fd 2, open PATH and move it onto every descriptor from 3
 *           to 1023 that is not open (where mapalloc's private copy of
 *           stderr was), exit: nothing of mapalloc's may land in PATH;
 *   fork    fork one child that allocates and exits, wait, exit (with
 *           MAPALLOC_STATS_FILE=...%p each process writes its own file).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

static void churn(void)
{
    for (int i = 0; i < 1000; i++) {
        sink = malloc(16 + i % 500);
        free(sink);
    }
    sink = malloc(100); /* one live block */
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    churn();
    if (!strcmp(argv[1], "exit")) {
        close(2);
        return 0;
    }
    if (!strcmp(argv[1], "misuse")) {
        char *p = malloc(40);
        close(2);
        free(p);
        free(sink = p);
        return 0; /* not reached */
    }
    if (!strcmp(argv[1], "reuse")) {
        if (argc < 3)
            return 2;
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            return 3;
        /* Take the slot of every descriptor that mapalloc may hold: close
         * them all first, as daemons do, then fill the numbers. */
        for (int i = 3; i < 1024; i++)
            if (i != fd)
                close(i);
        for (int i = 3; i < 1024; i++)
            if (i != fd && dup2(fd, i) < 0)
                return 4;
        close(2);
        return 0;
    }
    if (!strcmp(argv[1], "fork")) {
        pid_t pid = fork();
        if (pid < 0)
            return 5;
        if (pid == 0) {
            churn();
            exit(0); /* not _exit: the summary runs at a normal exit */
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return 6;
        printf("child %d\n", (int)pid);
        return 0;
    }
    return 2;
}
