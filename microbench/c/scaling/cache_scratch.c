/* cache-scratch (passive false sharing, from Hoard's suite): the main thread allocates one
 * 8 B object per thread, back to back; each thread frees its object, then repeatedly
 * allocates an 8 B object, writes it 100 times and frees it. An allocator that hands a
 * thread memory on a cache line another thread writes makes them share it. An operation:
 * one allocate-write-free. */
#include "scaling.h"
static char *first[MAX_THREADS];

static void setup(void) {
    for (int t = 0; t < threads; t++)
        first[t] = checked(malloc(8));
}

static uint64_t worker(int me) {
    free(first[me]);
    uint64_t ops = 0;
    while (!stopped()) {
        for (int k = 0; k < 256; k++) {
            volatile char *p = checked(malloc(8));
            for (int w = 0; w < 100; w++)
                p[w % 8] = (char)w;
            free((void *)p);
        }
        ops += 256;
    }
    return ops;
}

static void teardown(void) {}
