/* larson-style server churn: each thread replaces random slots of the slot set it holds
 * (free, then malloc of 8-1000 B, touched); every 4096 replacements it swaps its set with
 * the one in a random mailbox, so sets travel between threads and most frees, in time,
 * are of blocks another thread allocated. An operation: one replacement. */
#include "scaling.h"
#define SLOTS 1000
#define SWAP_EVERY 4096
static _Atomic(void **) *box;

static void **new_set(uint64_t *seed) {
    void **s = checked(malloc(SLOTS * sizeof *s));
    for (int i = 0; i < SLOTS; i++)
        s[i] = checked(malloc(rng_size(seed, 8, 1000)));
    return s;
}

static void **held[MAX_THREADS];

static void setup(void) {
    uint64_t seed = 42;
    box = checked(calloc(threads, sizeof *box));
    for (int t = 0; t < threads; t++) {
        box[t] = new_set(&seed);
        held[t] = new_set(&seed);
    }
}

static uint64_t worker(int me) {
    uint64_t seed = 0x9E3779B97F4A7C15ULL * (me + 1), ops = 0;
    void **set = held[me];
    while (!stopped()) {
        for (int r = 0; r < SWAP_EVERY; r++) {
            int i = rng_next(&seed) % SLOTS;
            free(set[i]);
            size_t n = rng_size(&seed, 8, 1000);
            set[i] = checked(malloc(n));
            memset(set[i], (int)n, n < 64 ? n : 64);
        }
        ops += SWAP_EVERY;
        set = atomic_exchange(&box[rng_next(&seed) % threads], set);
    }
    held[me] = set;
    return ops;
}

static void drop(void **s) {
    for (int i = 0; i < SLOTS; i++)
        free(s[i]);
    free(s);
}

static void teardown(void) {
    for (int t = 0; t < threads; t++) {
        drop(box[t]);
        drop(held[t]);
    }
    free(box);
}
