/* The footprint probe (`hakprof footprint`): what an allocator keeps resident for almost
 * nothing. `footprint none` allocates nothing (but what stdio and the loader do);
 * `footprint one` makes one 64-byte allocation; `footprint threads N` starts N threads that
 * each make two small allocations (64 and 200 bytes) and then wait, alive, while the main
 * thread reads its resident set and exits (so an allocator's per-thread state is still
 * there when its exit report measures it). Prints `rss_kib=<VmRSS>` on stdout. */
#include "served.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_barrier_t ready;
static void *volatile keep[2 * 256 + 1];

static void *thread_main(void *arg) {
    long k = (long)arg;
    keep[2 * k] = malloc(64);
    keep[2 * k + 1] = malloc(200);
    memset(keep[2 * k], 1, 64);
    memset(keep[2 * k + 1], 1, 200);
    pthread_barrier_wait(&ready);
    pause(); /* alive until the process exits */
    return NULL;
}

static long vm_rss_kib(void) {
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "none";
    if (strcmp(mode, "one") == 0) {
        keep[0] = malloc(64);
        memset(keep[0], 1, 64);
    } else if (strcmp(mode, "threads") == 0) {
        long n = argc > 2 ? atol(argv[2]) : 1;
        if (n < 1 || n > 256) {
            fprintf(stderr, "footprint threads N: N in 1..256\n");
            return 2;
        }
        pthread_barrier_init(&ready, NULL, (unsigned)n + 1);
        for (long k = 0; k < n; k++) {
            pthread_t t;
            if (pthread_create(&t, NULL, thread_main, (void *)k) != 0)
                return 1;
        }
        pthread_barrier_wait(&ready);
    } else if (strcmp(mode, "none") != 0) {
        fprintf(stderr, "usage: footprint none|one|threads N\n");
        return 2;
    }
    long rss = vm_rss_kib();
    print_served_by();
    printf("rss_kib=%ld\n", rss);
    fflush(stdout);
    exit(0); /* threads still alive */
}
