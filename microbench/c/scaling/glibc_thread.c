/* glibc bench-malloc-thread-style: each thread replaces random slots of its own working set
 * of 1000 blocks with blocks of 4 B-32 KiB (smaller sizes likelier: the size is drawn from
 * a random power of two), nothing shared: how well per-thread caches stay apart. An
 * operation: one free and one malloc. */
#include "scaling.h"
#define SLOTS 1000

static void setup(void) {}

static uint64_t worker(int me) {
    uint64_t seed = 0xA0761D6478BD642FULL * (me + 1), ops = 0;
    void **set = checked(calloc(SLOTS, sizeof *set));
    while (!stopped()) {
        for (int k = 0; k < 1024; k++) {
            uint64_t r = rng_next(&seed);
            int i = r % SLOTS;
            size_t top = (size_t)4 << ((r >> 16) % 13); /* 4 B .. 16 KiB */
            size_t n = 4 + (r >> 24) % top;
            free(set[i]);
            set[i] = checked(malloc(n));
            *(char *)set[i] = (char)k;
        }
        ops += 1024;
    }
    for (int i = 0; i < SLOTS; i++)
        free(set[i]);
    free(set);
    return ops;
}

static void teardown(void) {}
