/* mimalloc-bench's malloc-large: one thread allocates a 2 MiB block, writes every byte of
 * it, and frees it, 5000 times. Memory bandwidth, and whether the allocator keeps the block
 * (and its pages) from one iteration to the next instead of mapping it again. */
#include "common.h"

#define ITER 5000
#define SIZE ((size_t)2 << 20)

static void *volatile sink; /* keeps each block's address observable */

static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < ITER; i++) {
        char *p = malloc(SIZE);
        touch(p, 1);
        memset(p, 'x', SIZE);
        sink = p;
        free(p);
    }
    return NULL;
}

int main(void) {
    print_served_by();
    run_threads(1, worker);
    return 0;
}
