/* `_exit` from a signal handler must end the process at once, whatever the interrupted
 * thread held (POSIX: `_exit` is async-signal-safe). Each child installs a SIGALRM handler
 * that calls _exit(3), arms a timer of 1-20 ms, and allocates in a loop (small blocks and
 * 1-4 MiB blocks, so the learner's locks are taken often). The parent waits up to 3 s per
 * child; one still running then is counted as hung and killed.
 * Prints "ok <children>" when every child exited with status 3, else what went wrong. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void on_alarm(int sig) {
    (void)sig;
    _exit(3);
}

__attribute__((noinline)) static void churn(unsigned seed) {
    void *keep[64] = {0};
    for (unsigned i = 0;; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t size = (i % 2 == 0) ? ((1 + (seed >> 16) % 4) << 20) : 16 + (seed >> 16) % 2000;
        unsigned k = (seed >> 8) % 64;
        free(keep[k]);
        keep[k] = malloc(size);
        if (keep[k])
            memset(keep[k], (int)i, 16);
    }
}

int main(int argc, char **argv) {
    int children = argc > 1 ? atoi(argv[1]) : 100;
    int hung = 0, wrong = 0;
    for (int c = 0; c < children; c++) {
        pid_t pid = fork();
        if (pid == 0) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_alarm;
            sigaction(SIGALRM, &sa, NULL);
            struct itimerval t;
            memset(&t, 0, sizeof t);
            t.it_value.tv_usec = 1000 * (1 + (c * 7919) % 20);
            setitimer(ITIMER_REAL, &t, NULL);
            churn((unsigned)c * 2654435761u + 1);
        }
        int st = 0;
        int waited_ms = 0;
        while (waitpid(pid, &st, WNOHANG) == 0) {
            if (waited_ms >= 3000) {
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
                hung++;
                st = -1;
                break;
            }
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
            waited_ms++;
        }
        if (st != -1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 3))
            wrong++;
    }
    if (hung || wrong) {
        printf("hung %d wrong-status %d of %d\n", hung, wrong, children);
        return 1;
    }
    printf("ok %d\n", children);
    return 0;
}
