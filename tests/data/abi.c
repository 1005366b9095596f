/* The C ABI under LD_PRELOAD: defined results for bad input, fork safety, threads.
 * Prints "ok <n>" on success; `./abi free-stack` frees a stack pointer (must abort). */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); return 1; } } while (0)

static void *churn(void *arg) {
    (void)arg;
    for (int i = 0; i < 200000; i++) {
        void *p = malloc((size_t)(i % 2000) + 1);
        memset(p, i, (size_t)(i % 2000) + 1);
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "free-stack") == 0) {
        int x;
        free(&x);
        return 0;
    }
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b);
    free(a); free(b);
    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0);
    errno = 0; CHECK(calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    errno = 0; CHECK(malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    void *p = NULL;
    CHECK(posix_memalign(&p, 24, 10) == EINVAL);
    CHECK(posix_memalign(&p, 4, 10) == EINVAL);
    CHECK(posix_memalign(&p, 1 << 20, 10) == 0 && ((uintptr_t)p & ((1 << 20) - 1)) == 0);
    free(p);
    errno = 0; CHECK(aligned_alloc(24, 48) == NULL && errno == EINVAL);
    void *q = malloc(10);
    errno = 0; CHECK(reallocarray(q, SIZE_MAX, 2) == NULL && errno == ENOMEM);
    q = realloc(q, 5 << 20);
    CHECK(q != NULL && malloc_usable_size(q) >= (5u << 20));
    free(q);

    /* fork while another thread allocates: the child must allocate and free freely. */
    pthread_t t;
    pthread_create(&t, NULL, churn, NULL);
    int children_ok = 0;
    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (int j = 0; j < 10000; j++) free(malloc((size_t)j % 5000 + 1));
            void *big = malloc(3 << 20);
            memset(big, 1, 3 << 20);
            free(big);
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        children_ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    pthread_join(t, NULL);
    CHECK(children_ok == 20);
    printf("ok %d\n", children_ok);
    return 0;
}
