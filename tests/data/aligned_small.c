/* Small over-aligned blocks: 150 000 posix_memalign(64, 48) (and a few other alignments up
 * to a page), every other one freed, then all. Each must be aligned and usable; the
 * process's mappings (lines of /proc/self/maps) are counted at the peak and after the last
 * free. Prints "aligned ok, mappings <peak> <after>". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int mappings(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

#define N 150000
static void *blocks[N];

int main(void) {
    static const size_t aligns[] = {64, 64, 64, 128, 256, 1024, 4096, 32};
    for (int i = 0; i < N; i++) {
        size_t a = aligns[i % 8];
        size_t size = i % 8 == 7 ? 100 : 48;
        if (posix_memalign(&blocks[i], a, size) != 0) {
            printf("posix_memalign failed at %d\n", i);
            return 1;
        }
        if ((uintptr_t)blocks[i] % a != 0) {
            printf("block %d not aligned to %zu\n", i, a);
            return 1;
        }
        memset(blocks[i], i & 0xff, size);
    }
    for (int i = 0; i < N; i += 2)
        free(blocks[i]);
    int peak = mappings();
    for (int i = 1; i < N; i += 2) {
        if (((unsigned char *)blocks[i])[47] != (i & 0xff)) {
            printf("block %d lost its contents\n", i);
            return 1;
        }
        free(blocks[i]);
    }
    printf("aligned ok, mappings %d %d\n", peak, mappings());
    return 0;
}
