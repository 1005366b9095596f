/* A program with known counts behind a wrapper, for `hakprof sites`' per-stack test (and
 * to compare with heaptrack and DHAT by hand). Every allocation goes through xmalloc or
 * xrealloc, so each of them is one call site of malloc for all its callers:
 *   leak_buffers  100 x 200 B through xmalloc, never freed (20 000 B leaked);
 *   grow_buffer   one block grown by xrealloc from 1 KiB to 1 MiB by doubling, then freed:
 *                 the program never holds more than 1 MiB of it at once;
 *   temporaries   1000 x 64 B through xmalloc, each freed before the next allocation;
 *   hold_peak     one 8 MiB block through xmalloc, written, live while the heap peaks,
 *                 then freed.
 * With the argument `crash` it dies by SIGSEGV after all of that (the leak still live); with
 * `twice` it leaks twice as much (for `hakprof sites diff`).
 * Built with -O0 -g so each function keeps its calls and lines. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *leaks[100];

__attribute__((noinline)) static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p)
        abort();
    return p;
}

__attribute__((noinline)) static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q)
        abort();
    return q;
}

__attribute__((noinline)) static void leak_buffers(void) {
    for (int i = 0; i < 100; i++) {
        leaks[i] = xmalloc(200);
        memset(leaks[i], i, 200);
    }
}

__attribute__((noinline)) static void grow_buffer(void) {
    char *b = NULL;
    for (size_t n = 1024; n <= (1 << 20); n *= 2) {
        b = xrealloc(b, n);
        memset(b, 1, n);
    }
    free(b);
}

__attribute__((noinline)) static void temporaries(void) {
    for (int i = 0; i < 1000; i++) {
        char *t = xmalloc(64);
        t[0] = (char)i;
        free(t);
    }
}

__attribute__((noinline)) static void hold_peak(void) {
    char *p = xmalloc(8 << 20);
    memset(p, 2, 8 << 20);
    free(p);
}

int main(int argc, char **argv) {
    leak_buffers();
    if (argc > 1 && strcmp(argv[1], "twice") == 0)
        leak_buffers();
    grow_buffer();
    temporaries();
    hold_peak();
    if (argc > 1 && strcmp(argv[1], "crash") == 0) {
        volatile int *nowhere = NULL;
        *nowhere = 1;
    }
    printf("leaked %d bytes\n", (argc > 1 ? 2 : 1) * 100 * 200);
    return 0;
}
