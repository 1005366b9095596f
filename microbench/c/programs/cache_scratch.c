/* cache-scratch (Hoard's passive false sharing): the main thread allocates one small
 * object per thread and hands it over; each thread frees it, then allocates, writes and
 * frees small objects of its own. An allocator that hands a thread memory from the cache
 * line another thread writes makes the threads fight over that line. */
#include "common.h"
#define THREADS 2
#define ITER 200000
#define WRITES 2000
#define SIZE 8
static char *given[THREADS];

static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    free(given[me]);
    for (int i = 0; i < ITER; i++) {
        volatile char *p = malloc(SIZE);
        for (int w = 0; w < WRITES; w++)
            p[w % SIZE] += (char)w;
        free((void *)p);
    }
    return NULL;
}

int main(void) {
    print_served_by();
    for (int t = 0; t < THREADS; t++)
        given[t] = malloc(SIZE);
    run_threads(THREADS, worker);
    return 0;
}
