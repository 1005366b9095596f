/* The C-path probes: the measured patterns through the exported `malloc` and `free`, as a
 * program under LD_PRELOAD meets them. One process measures one allocator (the one the
 * dynamic linker bound); `microbench/src/cabi.rs` runs it once per allocator.
 *
 *   cabi count PATTERN OPS     run OPS operations once (instruction counts, under callgrind)
 *   cabi time SAMPLES          every pattern, SAMPLES timed samples each; one JSON line
 *                              per pattern: {"pattern":..,"ns_per_op":[..]}
 *
 * An operation is one malloc + free pair: in `pairN` the free follows its malloc; in
 * `batchN` 1000 mallocs are followed by their 1000 frees; in `server2` two threads each
 * allocate and hand every block to the other, which frees it (a server's request buffers).
 * Built with `-O2 -fno-builtin`, so the compiler keeps every call. */
#include "served.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 1000

static void *volatile sink; /* keeps a block's address observable */

static void pair(size_t size, long ops) {
    for (long i = 0; i < ops; i++) {
        void *p = malloc(size);
        sink = p;
        free(p);
    }
}

static void batch(size_t size, long ops) {
    static void *blocks[BATCH];
    for (long done = 0; done < ops; done += BATCH) {
        for (int i = 0; i < BATCH; i++)
            blocks[i] = malloc(size);
        for (int i = 0; i < BATCH; i++)
            free(blocks[i]);
    }
}

/* --- server2: a single-producer single-consumer ring per direction ---------------- */
#define RING 1024
struct ring {
    _Alignas(64) _Atomic long head; /* written by the consumer */
    _Alignas(64) _Atomic long tail; /* written by the producer */
    _Alignas(64) void *slot[RING];
};
static struct ring rings[2];
static long server_ops;

static void *server_thread(void *arg) {
    int me = (int)(intptr_t)arg;
    struct ring *out = &rings[me], *in = &rings[1 - me];
    long sent = 0, received = 0, n = server_ops / 2;
    while (sent < n || received < n) {
        long tail = atomic_load_explicit(&out->tail, memory_order_relaxed);
        if (sent < n && tail - atomic_load_explicit(&out->head, memory_order_acquire) < RING) {
            void *p = malloc(64);
            memset(p, me, 8);
            out->slot[tail % RING] = p;
            atomic_store_explicit(&out->tail, tail + 1, memory_order_release);
            sent++;
        }
        long head = atomic_load_explicit(&in->head, memory_order_relaxed);
        long ready = atomic_load_explicit(&in->tail, memory_order_acquire);
        if (head == ready && sent == n)
            sched_yield(); /* nothing to do until the other side sends */
        for (; head < ready; head++, received++)
            free(in->slot[head % RING]);
        atomic_store_explicit(&in->head, head, memory_order_release);
    }
    return NULL;
}

static void server2(size_t size, long ops) {
    (void)size;
    pthread_t t[2];
    memset(rings, 0, sizeof rings);
    server_ops = ops;
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, server_thread, (void *)(intptr_t)i);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
}

/* --- the patterns ------------------------------------------------------------------- */
struct pattern {
    const char *name;
    void (*run)(size_t size, long ops);
    size_t size;
    long ops_per_sample;
};
static const struct pattern PATTERNS[] = {
    {"pair16", pair, 16, 1000000},      {"pair64", pair, 64, 1000000},
    {"pair1024", pair, 1024, 1000000},  {"pair4096", pair, 4096, 1000000},
    {"batch16", batch, 16, 1000000},    {"batch64", batch, 64, 1000000},
    {"batch1024", batch, 1024, 500000}, {"batch4096", batch, 4096, 200000},
    {"server2", server2, 64, 400000},
};
#define NPATTERNS (sizeof PATTERNS / sizeof PATTERNS[0])

static const struct pattern *find(const char *name) {
    for (size_t i = 0; i < NPATTERNS; i++)
        if (strcmp(PATTERNS[i].name, name) == 0)
            return &PATTERNS[i];
    fprintf(stderr, "cabi: unknown pattern %s; known:", name);
    for (size_t i = 0; i < NPATTERNS; i++)
        fprintf(stderr, " %s", PATTERNS[i].name);
    fprintf(stderr, "\n");
    exit(2);
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void time_all(int samples) {
    for (size_t i = 0; i < NPATTERNS; i++) {
        const struct pattern *p = &PATTERNS[i];
        p->run(p->size, p->ops_per_sample / 4); /* warm-up: pages mapped, caches filled */
        printf("{\"pattern\":\"%s\",\"ns_per_op\":[", p->name);
        for (int s = 0; s < samples; s++) {
            double t0 = now_ns();
            p->run(p->size, p->ops_per_sample);
            printf("%s%.3f", s ? "," : "", (now_ns() - t0) / p->ops_per_sample);
        }
        printf("]}\n");
        fflush(stdout);
    }
}

int main(int argc, char **argv) {
    print_served_by();
    if (argc == 4 && strcmp(argv[1], "count") == 0) {
        const struct pattern *p = find(argv[2]);
        long ops = atol(argv[3]);
        if (ops <= 0 || ops % BATCH != 0) {
            fprintf(stderr, "cabi: OPS must be a positive multiple of %d\n", BATCH);
            return 2;
        }
        p->run(p->size, ops);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "time") == 0 && atoi(argv[2]) > 0) {
        time_all(atoi(argv[2]));
        return 0;
    }
    fprintf(stderr, "usage: cabi count PATTERN OPS | cabi time SAMPLES\n");
    return 2;
}
