/* Big-block churn: 20 live blocks of random 5-25 MiB; one at a time is freed and replaced,
 * and every page of the new block is written once. */
#include "common.h"
#define LIVE 20
#define REPLACEMENTS 100

int main(void) {
    print_served_by();
    uint64_t seed = 99;
    char *live[LIVE];
    size_t size[LIVE];
    for (int i = 0; i < LIVE; i++) {
        size[i] = rng_size(&seed, 5 << 20, 25 << 20);
        live[i] = malloc(size[i]);
        for (size_t o = 0; o < size[i]; o += 4096)
            live[i][o] = 1;
    }
    for (int r = 0; r < REPLACEMENTS; r++) {
        int k = rng_next(&seed) % LIVE;
        free(live[k]);
        size[k] = rng_size(&seed, 5 << 20, 25 << 20);
        live[k] = malloc(size[k]);
        if (live[k] == NULL)
            return 1;
        for (size_t o = 0; o < size[k]; o += 4096)
            live[k][o] = (char)r;
    }
    for (int i = 0; i < LIVE; i++)
        free(live[i]);
    return 0;
}
