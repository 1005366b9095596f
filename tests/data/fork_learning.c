/* Fork while another thread allocates big blocks (the learner's per-site locks busy).
 * Each child makes one 2 MiB allocation; a child that inherited a held lock hangs and is
 * killed by its alarm. Prints "ok <forks>" when every child exited 0. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;

/* One call site for the parent's thread and the children: the learner's lock for this
 * site is the one a child may inherit held. */
__attribute__((noinline)) static char *big_block(void) { return malloc(2 << 20); }

static void *churn(void *arg) {
    (void)arg;
    while (!stop) {
        char *p = big_block();
        p[0] = 1;
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int forks = argc > 1 ? atoi(argv[1]) : 300;
    pthread_t t;
    pthread_create(&t, NULL, churn, NULL);
    int hung = 0, failed = 0;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(5);
            char *p = big_block();
            p[4096] = 2;
            free(p);
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
            hung++;
        else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            failed++;
    }
    stop = 1;
    pthread_join(t, NULL);
    if (hung || failed) {
        printf("hung %d failed %d of %d\n", hung, failed, forks);
        return 1;
    }
    printf("ok %d\n", forks);
    return 0;
}
