/* What every program benchmark shares: the served-by line, a seeded random generator,
 * and the threads' start-up. Each program runs a fixed amount of work (no arguments) so
 * that its time under each allocator compares directly. */
#ifndef PROGRAMS_COMMON_H
#define PROGRAMS_COMMON_H
#include "../served.h"
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64*: fast, and the same sequence under every allocator. */
static inline uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* A size in [lo, hi]. */
static inline size_t rng_size(uint64_t *s, size_t lo, size_t hi) {
    return lo + rng_next(s) % (hi - lo + 1);
}

/* Runs `fn(i)` on `n` threads and waits for all. */
static void run_threads(int n, void *(*fn)(void *)) {
    pthread_t t[64];
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, fn, (void *)(intptr_t)i);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

/* Touches a block so that it is really used (and faulted in). */
static inline void touch(void *p, size_t n) {
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memset(p, (int)(n & 0xff), n < 64 ? n : 64);
}
#endif
