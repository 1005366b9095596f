/* glibc's bench-malloc-simple: loops of malloc then free of a fixed size over a small
 * working set, for sizes of 16 B to 1 KiB; THREADS (1 or 2, from the file name's build flag) run
 * it at once. */
#include "common.h"
#ifndef THREADS
#define THREADS 1
#endif
#define ROUNDS 50000
#define LIVE 100
static const size_t SIZES[] = {16, 64, 256, 1024};

static void *worker(void *arg) {
    (void)arg;
    void *live[LIVE];
    for (size_t s = 0; s < sizeof SIZES / sizeof SIZES[0]; s++)
        for (int r = 0; r < ROUNDS; r++) {
            for (int i = 0; i < LIVE; i++)
                live[i] = malloc(SIZES[s]);
            for (int i = 0; i < LIVE; i++)
                free(live[i]);
        }
    return NULL;
}

int main(void) {
    print_served_by();
    run_threads(THREADS, worker);
    return 0;
}
