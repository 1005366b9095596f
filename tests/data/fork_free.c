/* A child forked while another thread of the parent holds blocks (small and big, owned by
 * that thread's heap) frees them all, then allocates and frees on its own, and exits
 * through exit() (the exit report). Its blocks' heap belongs to a thread the child does
 * not have: the frees must neither crash nor hang. Prints "ok <children>". */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 4000
static void *blocks[N];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ready, done;

static void *holder(void *arg) {
    (void)arg;
    for (int i = 0; i < N; i++) {
        size_t size = i % 100 == 0 ? (size_t)(1 + i % 3) << 20 : 16 + (size_t)(i * 37) % 3000;
        blocks[i] = malloc(size);
        memset(blocks[i], i & 0xff, 16);
    }
    pthread_mutex_lock(&mu);
    ready = 1;
    pthread_cond_broadcast(&cv);
    while (!done)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    return NULL;
}

int main(int argc, char **argv) {
    int children = argc > 1 ? atoi(argv[1]) : 20;
    pthread_t t;
    pthread_create(&t, NULL, holder, NULL);
    pthread_mutex_lock(&mu);
    while (!ready)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    int bad = 0;
    for (int c = 0; c < children; c++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(10);
            for (int i = 0; i < N; i++) {
                if (((unsigned char *)blocks[i])[15] != (i & 0xff))
                    _exit(2);
                free(blocks[i]);
            }
            void *mine[1000];
            for (int round = 0; round < 20; round++) {
                for (int i = 0; i < 1000; i++)
                    mine[i] = malloc(16 + (size_t)(i * 53) % 5000);
                for (int i = 0; i < 1000; i++)
                    free(mine[i]);
            }
            exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("child %d: status %#x\n", c, st);
            bad++;
        }
    }
    pthread_mutex_lock(&mu);
    done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(t, NULL);
    if (bad)
        return 1;
    printf("ok %d\n", children);
    return 0;
}
