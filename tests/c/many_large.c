/*
 * many_large.c - many live large blocks at once (mapping count).
 *
 * Linux caps a process at vm.max_map_count mappings (65530 by default).
 * An allocator that gives every large block its own mapping plus a guard
 * page uses two or more mappings per block and runs out long before memory
 * does. This program keeps NBLOCKS blocks of BLOCK bytes (well above any
 * small/medium size class) alive at once, writes the first and last byte
 * of each, checks them all, frees them, and does it again. It prints the
 * number of lines of /proc/self/maps at the peak for information.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBLOCKS 34000
#define BLOCK (132 * 1024)

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -1;
    long lines = 0;
    int c;
    while ((c = getc(f)) != EOF)
        lines += c == '\n';
    fclose(f);
    return lines;
}

int main(void)
{
    static unsigned char *p[NBLOCKS];
    long peak = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < NBLOCKS; i++) {
            size_t n = BLOCK + (size_t)(i % 7) * 4096 + (size_t)(i % 3);
            p[i] = malloc(n);
            if (p[i] == NULL) {
                fprintf(stderr, "FAIL many_large: malloc(%zu) number %d returned NULL (maps: %ld)\n", n, i,
                        count_maps());
                return 1;
            }
            if (((uintptr_t)p[i] & 15) != 0) {
                fprintf(stderr, "FAIL many_large: block %p not 16-aligned\n", (void *)p[i]);
                return 1;
            }
            p[i][0] = (unsigned char)i;
            p[i][n - 1] = (unsigned char)(i >> 8);
        }
        long maps = count_maps();
        if (maps > peak)
            peak = maps;
        for (int i = 0; i < NBLOCKS; i++) {
            size_t n = BLOCK + (size_t)(i % 7) * 4096 + (size_t)(i % 3);
            if (p[i][0] != (unsigned char)i || p[i][n - 1] != (unsigned char)(i >> 8)) {
                fprintf(stderr, "FAIL many_large: block %d corrupted\n", i);
                return 1;
            }
        }
        for (int i = 0; i < NBLOCKS; i++)
            free(p[i]);
    }
    fprintf(stderr, "many_large: peak /proc/self/maps lines: %ld\n", peak);
    printf("blocks=%d ok\n", NBLOCKS);
    printf("ok\n");
    return 0;
}
