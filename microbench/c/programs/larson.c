/* larson-style server churn: each thread owns a set of slots and replaces a random slot
 * (free, then malloc of a random 8-1000 B) again and again; at every epoch the sets rotate
 * between threads, so each thread frees blocks another thread allocated. */
#include "common.h"
#define THREADS 4
#define SLOTS 2000
#define EPOCHS 80
#define ROUNDS 20000
static void *slots[THREADS][SLOTS];
static pthread_barrier_t barrier;

static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t seed = 0x9E3779B97F4A7C15ULL * (me + 1);
    for (int e = 0; e < EPOCHS; e++) {
        void **set = slots[(me + e) % THREADS]; /* another thread's blocks after epoch 0 */
        for (int r = 0; r < ROUNDS; r++) {
            int i = rng_next(&seed) % SLOTS;
            free(set[i]);
            size_t n = rng_size(&seed, 8, 1000);
            set[i] = malloc(n);
            touch(set[i], n);
        }
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

int main(void) {
    print_served_by();
    uint64_t seed = 42;
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < SLOTS; i++) {
            size_t n = rng_size(&seed, 8, 1000);
            slots[t][i] = malloc(n);
            touch(slots[t][i], n);
        }
    pthread_barrier_init(&barrier, NULL, THREADS);
    run_threads(THREADS, worker);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < SLOTS; i++)
            free(slots[t][i]);
    return 0;
}
