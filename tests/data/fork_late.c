/* fork from a thread's last destructor round, after it attached a late heap: in the child,
 * that heap still belongs to the forking thread and must not be handed to a new thread.
 * The child frees a block (now on top of its heap's free list), starts a thread that
 * allocates the same size, and prints whether that thread got the same block (a shared
 * heap). Prints "different heap" when each thread of the child has its own. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_key_t key;
static __thread int round_no;
static void *volatile shared;

static void *peer(void *a) {
    (void)a;
    shared = malloc(64);
    return NULL;
}

static void child_work(void) {
    void *p = malloc(64);
    free(p);
    pthread_t t;
    pthread_create(&t, NULL, peer, NULL);
    pthread_join(t, NULL);
    printf("%s\n", p == shared ? "SAME HEAP" : "different heap");
    fflush(stdout);
}

static void destructor(void *v) {
    (void)v;
    if (++round_no < 4) {
        pthread_setspecific(key, (void *)1);
        return;
    }
    void *volatile q = malloc(64); /* a late heap, in the last round */
    free(q);
    pid_t pid = fork();
    if (pid == 0) {
        child_work();
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}

static void *work(void *a) {
    (void)a;
    void *volatile q = malloc(64);
    free(q);
    pthread_setspecific(key, (void *)1);
    return NULL;
}

int main(void) {
    void *volatile q = malloc(1);
    free(q);
    pthread_key_create(&key, destructor);
    pthread_t t;
    pthread_create(&t, NULL, work, NULL);
    pthread_join(t, NULL);
    return 0;
}
