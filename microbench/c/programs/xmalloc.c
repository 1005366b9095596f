/* xmalloc-style producer/consumer: producers allocate blocks of 16-256 B in batches and
 * hand each batch to a consumer thread, which frees every block of it. */
#include "common.h"
#define PAIRS 2
#define BATCH 256
#define BATCHES 20000
struct batch { struct batch *next; void *block[BATCH]; };
static struct batch *queue;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
static int producers_left = PAIRS;
static int queued; /* batches in the queue: producers wait above MAX_QUEUED */
#define MAX_QUEUED 64
static pthread_cond_t room = PTHREAD_COND_INITIALIZER;

static void *producer(void *arg) {
    uint64_t seed = 7 + (uintptr_t)arg;
    for (int b = 0; b < BATCHES; b++) {
        struct batch *x = malloc(sizeof *x);
        for (int i = 0; i < BATCH; i++) {
            size_t n = rng_size(&seed, 16, 256);
            x->block[i] = malloc(n);
            touch(x->block[i], n);
        }
        pthread_mutex_lock(&lock);
        while (queued >= MAX_QUEUED)
            pthread_cond_wait(&room, &lock);
        queued++;
        x->next = queue;
        queue = x;
        pthread_cond_signal(&ready);
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    producers_left--;
    pthread_cond_broadcast(&ready);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (queue == NULL && producers_left > 0)
            pthread_cond_wait(&ready, &lock);
        struct batch *x = queue;
        if (x != NULL) {
            queue = x->next;
            queued--;
            pthread_cond_signal(&room);
        }
        pthread_mutex_unlock(&lock);
        if (x == NULL)
            return NULL;
        for (int i = 0; i < BATCH; i++)
            free(x->block[i]);
        free(x);
    }
}

static void *role(void *arg) {
    intptr_t i = (intptr_t)arg;
    return i < PAIRS ? producer(arg) : consumer(arg);
}

int main(void) {
    print_served_by();
    run_threads(2 * PAIRS, role);
    return 0;
}
