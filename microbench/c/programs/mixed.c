/* A mixed-size workload with a long-lived tail: mostly small blocks (16-512 B), some
 * medium (4-64 KiB), a few of 1 MiB; most die young (a FIFO of 10 000), 2 % live to the end. */
#include "common.h"
#define OPS 3000000
#define FIFO 10000
#define TAIL_MAX (OPS / 40)

int main(void) {
    print_served_by();
    uint64_t seed = 2024;
    void **fifo = calloc(FIFO, sizeof *fifo);
    void **tail = calloc(TAIL_MAX, sizeof *tail);
    long tails = 0;
    for (long i = 0; i < OPS; i++) {
        uint64_t r = rng_next(&seed) % 1000;
        size_t n = r < 900 ? rng_size(&seed, 16, 512) : r < 999 ? rng_size(&seed, 4096, 65536) : (1 << 20);
        void *p = malloc(n);
        touch(p, n);
        if (rng_next(&seed) % 50 == 0 && tails < TAIL_MAX) {
            tail[tails++] = p; /* the long-lived tail */
        } else {
            long k = i % FIFO;
            free(fifo[k]);
            fifo[k] = p;
        }
    }
    for (long k = 0; k < FIFO; k++)
        free(fifo[k]);
    for (long k = 0; k < tails; k++)
        free(tail[k]);
    free(fifo);
    free(tail);
    return 0;
}
