/* Threads that allocate from a pthread key destructor, in every destructor round, the
 * last one included (after hakmem's own thread-exit destructor has parked the heap).
 * The exit stats must show heaps bounded by the live threads, not by the threads made.
 *
 *   late_alloc N          threads allocate while they run, then in every round
 *   late_alloc N first    a thread's first allocation comes in the last round
 *   late_alloc N before   this program's key is made before hakmem's (its destructor
 *                         runs first in each round) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_key_t key;
static volatile long sum;

static __thread int round_no;
static int first_late; /* "first": no allocation before the last round */

/* Runs in each of glibc's 4 destructor rounds (it sets its key again), always after
 * hakmem's own destructor parked the heap: each malloc here attaches a heap again, and
 * after the last round no destructor runs to park it. */
static void destructor(void *v) {
    if (first_late) {
        if (++round_no < 4) {
            pthread_setspecific(key, (void *)1); /* another round, no allocation */
            return;
        }
        char *p = malloc(64);
        p[0] = 1;
        sum += p[0];
        free(p);
        return;
    }
    free(v);
    char *p = malloc(64);
    p[0] = 1;
    sum += p[0];
    if (++round_no < 4)
        pthread_setspecific(key, p);
    else
        free(p);
}

static void *work(void *arg) {
    (void)arg;
    if (first_late) {
        pthread_setspecific(key, (void *)1);
        return NULL;
    }
    char *p = malloc(64);
    p[1] = 2;
    pthread_setspecific(key, p);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1000;
    const char *mode = argc > 2 ? argv[2] : "";
    first_late = strcmp(mode, "first") == 0;
    if (strcmp(mode, "before") == 0) {
        pthread_key_create(&key, destructor);
        free(malloc(1));
    } else {
        /* The first malloc sets hakmem up (its thread-exit key); this program's key comes
         * after it, so its destructor runs after hakmem's in every round. */
        free(malloc(1));
        pthread_key_create(&key, destructor);
    }
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        pthread_create(&t, NULL, work, NULL);
        pthread_join(t, NULL);
    }
    printf("ok %d\n", threads);
    return 0;
}
