/* The server pattern: threads in pairs (a thread alone pairs with itself); each allocates
 * request buffers of 64 B-4 KiB, writes them, and hands each to its partner through a ring;
 * the partner frees them. Every free is remote, both ways. An operation: one buffer
 * allocated and freed. */
#include "scaling.h"
#define RING 1024
static struct ring {
    _Alignas(64) _Atomic(uint64_t) head;
    _Alignas(64) _Atomic(uint64_t) tail;
    void *slot[RING];
} *rings;

static void setup(void) { rings = checked(calloc(threads, sizeof *rings)); }

static int partner(int me) {
    int p = me ^ 1;
    return p < threads ? p : me;
}

static uint64_t drain(struct ring *r, int all) {
    uint64_t n = 0, h = atomic_load_explicit(&r->head, memory_order_relaxed);
    while (h != atomic_load_explicit(&r->tail, memory_order_acquire) && (all || n < 64)) {
        free(r->slot[h % RING]);
        h++;
        n++;
    }
    atomic_store_explicit(&r->head, h, memory_order_release);
    return n;
}

static uint64_t worker(int me) {
    uint64_t seed = 0xE7037ED1A0B428DBULL * (me + 1), ops = 0;
    struct ring *out = &rings[partner(me)], *in = &rings[me];
    while (!stopped()) {
        int made = 0;
        for (int k = 0; k < 64; k++, made++) {
            uint64_t t = atomic_load_explicit(&out->tail, memory_order_relaxed);
            if (t - atomic_load_explicit(&out->head, memory_order_acquire) == RING)
                break; /* the partner is behind */
            size_t n = rng_size(&seed, 64, 4096);
            char *p = checked(malloc(n));
            p[0] = p[n - 1] = (char)k;
            out->slot[t % RING] = p;
            atomic_store_explicit(&out->tail, t + 1, memory_order_release);
        }
        uint64_t n = drain(in, 0);
        ops += n;
        if (n == 0 && made == 0)
            idle();
    }
    return ops;
}

static void teardown(void) {
    for (int t = 0; t < threads; t++)
        drain(&rings[t], 1);
    free(rings);
}
