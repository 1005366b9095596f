/* Known allocating functions for `hakprof sites`' test: make_buffers makes 3 big buffers
 * (1 MiB each) and leaves one live at exit on purpose; make_nodes makes 100 small nodes
 * (48 bytes each) and frees them all, the last one right after it was made (so 1
 * temporary allocation); make_scratch makes 10 temporaries of 200 bytes, each freed before
 * the next allocation, called through build_tree so its stack has a caller between it and
 * main; make_aligned makes 5 blocks with aligned_alloc and 1 with posix_memalign, freed.
 * Built with -O0 -g so each function keeps its one call to malloc and its line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *leaked;

__attribute__((noinline)) static void make_buffers(void) {
    void *b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = malloc(1 << 20);
        memset(b[i], i, 1 << 20);
    }
    free(b[0]);
    free(b[1]);
    leaked = b[2];
}

__attribute__((noinline)) static void make_nodes(void) {
    void *n[100];
    for (int i = 0; i < 100; i++) {
        n[i] = malloc(48);
        memset(n[i], i, 48);
    }
    for (int i = 0; i < 100; i++)
        free(n[i]);
}

__attribute__((noinline)) static void make_scratch(void) {
    for (int i = 0; i < 10; i++) {
        char *s = malloc(200);
        memset(s, i, 200);
        free(s);
    }
}

__attribute__((noinline)) static void make_aligned(void) {
    void *a[6];
    for (int i = 0; i < 5; i++)
        a[i] = aligned_alloc(64, 256);
    if (posix_memalign(&a[5], 4096, 128) != 0)
        abort();
    for (int i = 0; i < 6; i++)
        free(a[i]);
}

__attribute__((noinline)) static void build_tree(void) {
    make_scratch();
}

int main(void) {
    make_buffers();
    make_nodes();
    build_tree();
    make_aligned();
    free(NULL); /* defined to do nothing: the sites mode once crashed on it */
    printf("done %p\n", leaked != NULL ? (void *)1 : NULL);
    return 0;
}
