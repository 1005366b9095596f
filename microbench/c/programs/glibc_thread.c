/* glibc's bench-malloc-thread: each of 2 threads replaces random slots of a working set
 * of 4000 blocks with blocks of random size (4 B to 32 KiB, small ones most often). */
#include "common.h"
#define THREADS 2
#define SLOTS 4000
#define ITER 6000000

static void *worker(void *arg) {
    uint64_t seed = 1234 + (uintptr_t)arg;
    void **slot = calloc(SLOTS, sizeof *slot);
    for (long i = 0; i < ITER; i++) {
        int k = rng_next(&seed) % SLOTS;
        free(slot[k]);
        uint64_t r = rng_next(&seed);
        size_t n = (r & 7) ? rng_size(&seed, 4, 512) : rng_size(&seed, 4, 32768);
        slot[k] = malloc(n);
        touch(slot[k], n);
    }
    for (int k = 0; k < SLOTS; k++)
        free(slot[k]);
    free(slot);
    return NULL;
}

int main(void) {
    print_served_by();
    run_threads(THREADS, worker);
    return 0;
}
