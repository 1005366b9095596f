/* What a hardened allocator should catch, one case per run (argv[1]); the driver runs
 * each case in its own process and reads how it ended (exit status, signal, stderr).
 *
 *   forge           use-after-free write of a chosen address (a static buffer in .bss)
 *                   into the first word of a freed block, then two mallocs
 *   forge_in_page   the same with a link that stays inside the block's page, encoded as
 *                   hakmem encodes it (next ^ block): an interior pointer of another block
 *   double_top      free(p) twice in a row
 *   double_deep     free(p); free(q); free(p)
 *   interior        free(p + 16) of a live 64 B block
 *   never_allocated free of a block-aligned address 512 B past the only live block
 *   overflow        a 64 B block overflowed by 32 bytes of 'A' into the free block after
 *                   it, then two mallocs
 *
 * When the allocator lets the case through, prints "bad: <what happened>" (the bug went
 * unnoticed) or "harmless: <what happened>" (it had no effect the program could see) and
 * exits 0 (`microbench::hardening` runs it under each allocator: `make hardening`). */
#include "served.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char target[256] __attribute__((aligned(64)));

static void *keep[8];

int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    setvbuf(stdout, NULL, _IONBF, 0);
    print_served_by();
    /* Warm the size class, so the blocks below are adjacent and the lists short. */
    for (int i = 0; i < 8; i++)
        keep[i] = malloc(64);
    if (!strcmp(c, "forge") || !strcmp(c, "forge_in_page")) {
        char *a = malloc(64), *b = malloc(64);
        free(a);
        free(b);
        if (!strcmp(c, "forge"))
            *(void **)b = target; /* use after free */
        else
            *(uintptr_t *)b = ((uintptr_t)a + 16) ^ (uintptr_t)b;
        void *x = malloc(64), *y = malloc(64);
        if (x == target || y == target)
            printf("bad: malloc returned the forged address\n");
        else if (y == a + 16 || x == a + 16)
            printf("bad: malloc returned the forged address inside another block\n");
        else
            printf("harmless: the link was not followed (malloc returned other blocks)\n");
        return 0;
    }
    if (!strcmp(c, "double_top")) {
        char *p = malloc(64);
        free(p);
        free(p);
        printf("bad: not caught\n");
        return 0;
    }
    if (!strcmp(c, "double_deep")) {
        char *p = malloc(64), *q = malloc(64);
        free(p);
        free(q);
        free(p);
        void *x = malloc(64), *y = malloc(64), *z = malloc(64);
        printf("bad: not caught%s\n",
               (x == y || y == z || x == z) ? " (later mallocs returned one block twice)" : "");
        return 0;
    }
    if (!strcmp(c, "interior")) {
        char *p = malloc(64);
        free(p + 16);
        printf("bad: not caught\n");
        return 0;
    }
    if (!strcmp(c, "never_allocated")) {
        char *p = malloc(64);
        free(p + 512);
        printf("bad: not caught\n");
        return 0;
    }
    if (!strcmp(c, "overflow")) {
        char *a = malloc(64), *b = malloc(64);
        free(b);
        memset(a, 'A', 96); /* heap overflow over b's first words */
        void *x = malloc(64), *y = malloc(64);
        int bad = ((uintptr_t)x >> 32) == 0x41414141 || ((uintptr_t)y >> 32) == 0x41414141;
        printf(bad ? "bad: malloc returned an address made of the overflow bytes\n"
                   : "harmless: no effect seen (the blocks were not linked through b)\n");
        return 0;
    }
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
}
