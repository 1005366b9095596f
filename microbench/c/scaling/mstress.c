/* mstress-style: one shared table of slots; each operation puts a fresh block (16 B-1 KiB,
 * one in 100 up to 64 KiB) into a random slot with an atomic exchange and frees the block it
 * replaced, which any thread may have allocated: local and remote frees mixed, as many as
 * the threads make. */
#include "scaling.h"
#define SLOTS_PER_THREAD 512
static _Atomic(void *) *table;
static size_t slots;

static void setup(void) {
    slots = (size_t)threads * SLOTS_PER_THREAD;
    table = checked(calloc(slots, sizeof *table));
}

static uint64_t worker(int me) {
    uint64_t seed = 0xD1B54A32D192ED03ULL * (me + 1), ops = 0;
    while (!stopped()) {
        for (int k = 0; k < 256; k++) {
            uint64_t r = rng_next(&seed);
            size_t n = r % 100 == 0 ? rng_size(&seed, 1024, 64 << 10) : rng_size(&seed, 16, 1024);
            char *p = checked(malloc(n));
            p[0] = (char)n;
            p[n - 1] = (char)k;
            free(atomic_exchange(&table[(r >> 8) % slots], p));
        }
        ops += 256;
    }
    return ops;
}

static void teardown(void) {
    for (size_t i = 0; i < slots; i++)
        free(table[i]);
    free(table);
}
