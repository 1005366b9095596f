/* xmalloc-test-style producer/consumer: each thread allocates 64 B blocks in batches of 64
 * for the next thread (a ring per thread) and frees the batches the previous thread made,
 * so with two threads or more every free is remote. An operation: one block allocated and
 * freed. */
#include "scaling.h"
#define BATCH 64
#define RING 64
struct batch { void *block[BATCH]; };
static struct ring {
    _Alignas(64) _Atomic(uint64_t) head; /* consumer */
    _Alignas(64) _Atomic(uint64_t) tail; /* producer */
    struct batch *slot[RING];
} *rings;

static void setup(void) { rings = checked(calloc(threads, sizeof *rings)); }

static int push(struct ring *r, struct batch *b) {
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (t - atomic_load_explicit(&r->head, memory_order_acquire) == RING)
        return 0;
    r->slot[t % RING] = b;
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return 1;
}

static struct batch *pop(struct ring *r) {
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (h == atomic_load_explicit(&r->tail, memory_order_acquire))
        return NULL;
    struct batch *b = r->slot[h % RING];
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return b;
}

static uint64_t consume(struct ring *r) {
    struct batch *b = pop(r);
    if (b == NULL)
        return 0;
    for (int i = 0; i < BATCH; i++)
        free(b->block[i]);
    free(b);
    return BATCH;
}

static uint64_t worker(int me) {
    struct ring *mine = &rings[me], *next = &rings[(me + 1) % threads];
    uint64_t ops = 0;
    while (!stopped()) {
        struct batch *b = checked(malloc(sizeof *b));
        for (int i = 0; i < BATCH; i++)
            *(volatile char *)(b->block[i] = checked(malloc(64))) = (char)i;
        while (!push(next, b)) {
            uint64_t n = consume(mine); /* the next thread is behind: do our own share */
            ops += n;
            if (n == 0)
                idle();
            if (stopped()) {
                for (int i = 0; i < BATCH; i++)
                    free(b->block[i]);
                free(b);
                return ops;
            }
        }
        ops += consume(mine);
    }
    return ops;
}

static void teardown(void) {
    for (int t = 0; t < threads; t++)
        while (consume(&rings[t]))
            ;
    free(rings);
}
