/* The thread-scaling programs' harness (`make bench-scaling`): `PROGRAM THREADS SECONDS`
 * starts THREADS workers, lets them run for SECONDS, and prints on stdout
 * `ops=<operations done> seconds=<elapsed>` (throughput = ops / seconds). Each worker
 * counts its own operations in a cache line of its own and stops when `stop` is set. */
#ifndef SCALING_H
#define SCALING_H
#include "../served.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 256

static int threads;
static atomic_int stop;
static struct {
    _Alignas(64) uint64_t ops;
} done[MAX_THREADS];

/* xorshift64*: the same sequence under every allocator. */
static inline uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static inline size_t rng_size(uint64_t *s, size_t lo, size_t hi) {
    return lo + rng_next(s) % (hi - lo + 1);
}

static inline int stopped(void) { return atomic_load_explicit(&stop, memory_order_relaxed); }

/* A worker that can make no progress (its partner is behind) gives its core away: with
 * more threads than cores, spinning would starve the partner it waits for. */
static inline void idle(void) { sched_yield(); }

static inline void *checked(void *p) {
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* The program's parts: `setup` before the workers start (after `threads` is set),
 * `worker(i)` on each thread (returns its operation count), `teardown` after they end. */
static void setup(void);
static uint64_t worker(int me);
static void teardown(void);

static void *run_worker(void *arg) {
    int me = (int)(intptr_t)arg;
    done[me].ops = worker(me);
    return NULL;
}

int main(int argc, char **argv) {
    print_served_by();
    threads = argc > 1 ? atoi(argv[1]) : 1;
    double seconds = argc > 2 ? atof(argv[2]) : 0.25;
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "threads: 1..%d\n", MAX_THREADS);
        return 2;
    }
    setup();
    pthread_t t[MAX_THREADS];
    double start = now_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, run_worker, (void *)(intptr_t)i);
    struct timespec d = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
    nanosleep(&d, NULL);
    atomic_store(&stop, 1);
    uint64_t ops = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        ops += done[i].ops;
    }
    double elapsed = now_s() - start;
    teardown();
    printf("ops=%llu seconds=%.6f\n", (unsigned long long)ops, elapsed);
    return 0;
}
#endif
