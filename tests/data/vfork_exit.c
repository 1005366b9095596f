/* A vfork child whose exec fails calls _exit(127), in the parent's memory: it must not
 * write the parent's exit report as its own, and the parent must still write its own.
 * Prints "parent <pid> child <pid>" and exits 0 when the child exited with 127. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) static char *work(size_t n) {
    char *p = malloc(n);
    memset(p, 1, n);
    return p;
}

int main(void) {
    char *keep[100];
    for (int i = 0; i < 100; i++)
        keep[i] = work(100 + i);
    pid_t pid = vfork();
    if (pid == 0) {
        char *const argv[] = {"/nonexistent/program", NULL};
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    for (int i = 0; i < 100; i++)
        free(keep[i]);
    printf("parent %d child %d\n", (int)getpid(), (int)pid);
    return WIFEXITED(st) && WEXITSTATUS(st) == 127 ? 0 : 1;
}
