/*
 * mapalloc.h - the C API of mapalloc, a hardened size-class allocator for Linux.
 *
 * Two ways to use it:
 *  - Preload: LD_PRELOAD=/path/to/libmapalloc.so program
 *    replaces malloc, free, calloc, realloc, reallocarray, posix_memalign, aligned_alloc,
 *    memalign, valloc, pvalloc, malloc_usable_size, free_sized, free_aligned_sized,
 *    malloc_trim, mallinfo, mallinfo2, malloc_stats, mallopt, malloc_info (and glibc's
 *    __libc_* names), and every replaceable C++ operator new and delete.
 *  - Link: include this header and call the mapalloc_* functions, linking libmapalloc.a
 *    (add -lpthread -ldl -lm) or libmapalloc.so.
 *
 * Semantics are glibc's: results are 16-byte aligned; malloc(0) returns a unique pointer (to no
 * memory: any access through it faults);
 * a NULL return sets errno to ENOMEM (EINVAL for a bad alignment); free never changes errno.
 * Heap misuse (double free, freeing a pointer mapalloc did not return) prints one line such
 * as "mapalloc: double free of 0x7f..." on stderr and aborts.
 */
#ifndef MAPALLOC_H
#define MAPALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MAPALLOC_MALLOC __attribute__((malloc, warn_unused_result))
#define MAPALLOC_SIZE(n) __attribute__((alloc_size(n)))
#define MAPALLOC_SIZE2(n, m) __attribute__((alloc_size(n, m)))
#define MAPALLOC_ALIGN(n) __attribute__((alloc_align(n)))
#else
#define MAPALLOC_MALLOC
#define MAPALLOC_SIZE(n)
#define MAPALLOC_SIZE2(n, m)
#define MAPALLOC_ALIGN(n)
#endif

/* Allocate size bytes (16-byte aligned). NULL and errno = ENOMEM on failure. */
void *mapalloc_malloc(size_t size) MAPALLOC_MALLOC MAPALLOC_SIZE(1);

/* Free a block from any mapalloc_* allocation function; NULL is a no-op; errno is kept. */
void mapalloc_free(void *ptr);

/* Allocate n * size zeroed bytes; NULL and ENOMEM when the product overflows. */
void *mapalloc_calloc(size_t n, size_t size) MAPALLOC_MALLOC MAPALLOC_SIZE2(1, 2);

/* Resize a block, keeping its contents. realloc(NULL, n) is malloc(n); realloc(p, 0) frees p
 * and returns NULL. On failure returns NULL with ENOMEM and leaves the block intact. */
void *mapalloc_realloc(void *ptr, size_t size) MAPALLOC_SIZE(2);

/* realloc(ptr, n * size) with an overflow check (NULL and ENOMEM, block intact). */
void *mapalloc_reallocarray(void *ptr, size_t n, size_t size) MAPALLOC_SIZE2(2, 3);

/* Allocate with an alignment that is a power of two and a multiple of sizeof(void *).
 * Returns 0, EINVAL or ENOMEM; *memptr is written only on success. */
int mapalloc_posix_memalign(void **memptr, size_t alignment, size_t size);

/* Allocate with an alignment taken as glibc 2.36 takes it: 16 or less (0 too) is
 * mapalloc_malloc, one that is not a power of two is rounded up to the next; NULL with
 * EINVAL only above SIZE_MAX / 2 + 1, NULL with ENOMEM for one too large to serve. */
void *mapalloc_aligned_alloc(size_t alignment, size_t size)
    MAPALLOC_MALLOC MAPALLOC_ALIGN(1) MAPALLOC_SIZE(2);

/* As mapalloc_aligned_alloc (obsolete interface). */
void *mapalloc_memalign(size_t alignment, size_t size)
    MAPALLOC_MALLOC MAPALLOC_ALIGN(1) MAPALLOC_SIZE(2);

/* Allocate size bytes aligned to the OS page size. */
void *mapalloc_valloc(size_t size) MAPALLOC_MALLOC MAPALLOC_SIZE(1);

/* Allocate size rounded up to whole OS pages (at least one), page-aligned. */
void *mapalloc_pvalloc(size_t size) MAPALLOC_MALLOC;

/* Bytes usable in a live block (>= the size requested); 0 for NULL. */
size_t mapalloc_malloc_usable_size(void *ptr);

/* Free a block allocated with size bytes (C23 free_sized). A size larger than the block
 * aborts as heap misuse. */
void mapalloc_free_sized(void *ptr, size_t size);

/* Free a block allocated with this alignment and size (C23 free_aligned_sized). */
void mapalloc_free_aligned_sized(void *ptr, size_t alignment, size_t size);

/* Give cached free memory back to the OS now; returns 1 if anything was released. */
int mapalloc_malloc_trim(size_t pad);

/* Print a short summary of the allocator's counters to stderr. */
void mapalloc_stats_print(void);

/* With MAPALLOC_PROF=1 or leaks: write the live heap now, in the gperftools heap-profile
 * format (pprof, google-pprof and mapalloc-prof read it), to the file path names ("%p" is the
 * process id), or for a NULL path to MAPALLOC_PROF_FILE's name followed by ".<n>". 0 on
 * success; -1 with errno set otherwise: EINVAL when profiling is off, else why the file could
 * not be written. Never allocates. */
int mapalloc_profile_dump(const char *path);

/* glibc's mallopt: 1 for a <malloc.h> parameter (M_MXFAST ... M_ARENA_MAX) with a value
 * glibc accepts, 0 otherwise. None changes mapalloc's behaviour (see the README). */
int mapalloc_mallopt(int param, int value);

/* glibc's malloc_info: the statistics as glibc's XML (<malloc version="1">) written to fp.
 * options must be 0 (else -1 with EINVAL); 0 on success, -1 when writing failed. fp is a
 * FILE * (declared void * so that this header needs no <stdio.h>). */
int mapalloc_malloc_info(int options, void *fp);

#ifdef __cplusplus
}
#endif

#endif /* MAPALLOC_H */
