/* cache-thrash (Hoard's active false sharing): threads allocate small objects at the same
 * time and write them hard; objects of two threads on one cache line thrash it. */
#include "common.h"
#define THREADS 2
#define ITER 200000
#define WRITES 2000
#define SIZE 8

static void *worker(void *arg) {
    (void)arg;
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
    run_threads(THREADS, worker);
    return 0;
}
