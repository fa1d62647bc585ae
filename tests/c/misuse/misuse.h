/*
 * misuse.h - helpers of the misuse programs (see tests/misuse_preload.rs).
 *
 * Each program commits one misuse and must die: SIGABRT with one
 * "mapalloc: ..." line on stderr, or SIGSEGV for a guard hit. Before the
 * misuse it prints "ptr=0x..." (the address the message must name) on
 * stdout; a program that survives prints "survived" and exits 0, which the
 * test reports as a failure.
 */
#ifndef MISUSE_H
#define MISUSE_H

#ifndef _GNU_SOURCE /* g++ defines it already */
#define _GNU_SOURCE
#endif
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The address the expected message names, flushed before the misuse. */
static inline void announce(const void *p)
{
    printf("ptr=%p\n", p);
    fflush(stdout);
}

/* Keeps the compiler from seeing through a freed or out-of-bounds pointer. */
static inline void *launder(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static inline void survived(void)
{
    printf("survived\n");
    fflush(stdout);
    exit(0);
}

/* Reporting where a guard fault hit: the SIGSEGV handler writes
 * "fault=0x..." on stdout (with write(2): no stdio, no malloc in a signal
 * handler), then returns with the default action restored, so the access
 * faults again and the process dies of SIGSEGV. */
static void put_hex(char *buf, size_t *n, uintptr_t v)
{
    char tmp[2 * sizeof v];
    int k = 0;
    do {
        tmp[k++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v != 0);
    buf[(*n)++] = '0';
    buf[(*n)++] = 'x';
    while (k > 0)
        buf[(*n)++] = tmp[--k];
}

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    char buf[64];
    size_t n = 0;
    memcpy(buf, "fault=", 6);
    n = 6;
    put_hex(buf, &n, (uintptr_t)si->si_addr);
    buf[n++] = '\n';
    ssize_t w = write(1, buf, n);
    (void)w;
}

static inline void report_faults(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
}

/* Prints "name=0x..." for the test to compare with the fault address. */
static inline void announce_as(const char *name, const void *p)
{
    printf("%s=%p\n", name, p);
    fflush(stdout);
}

/* Issue 20, item 3 (overflows and underflows that run far): a block of `size`
 * bytes lying between 1.25 MiB and 2.75 MiB into its 4 MiB-aligned region (a
 * segment), with more than 1 MiB of the segment on either side, so that a
 * linear overflow or underflow of 1 MiB from it stays inside the segment
 * unless a guard inside the segment stops it. The blocks allocated on the way
 * stay allocated (they fill the memory the overflow runs through). */
static inline char *block_mid_segment(size_t size)
{
    const uintptr_t mask = ((uintptr_t)4 << 20) - 1;
    for (long i = 0; i < (1L << 22); i++) {
        char *p = (char *)malloc(size);
        if (p == NULL)
            break;
        memset(p, 1, size);
        uintptr_t off = (uintptr_t)p & mask;
        if (off >= ((uintptr_t)5 << 18) && off < ((uintptr_t)11 << 18))
            return p;
    }
    printf("no block in the middle of a segment\n");
    fflush(stdout);
    exit(2);
}

/* A run of accessible heap memory is never longer than this. */
#define GUARD_STRIDE ((size_t)512 << 10)
#define FAR ((size_t)1 << 20)

#endif
