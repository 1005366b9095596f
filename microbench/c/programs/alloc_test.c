/* mimalloc-bench's alloc-test (OLogN Technologies' allocator tester, as `alloc-test 1`
 * runs it), ported to C with a tenth of its iterations. One thread keeps 2^18 slots, about
 * half of them filled at the start. Each step picks a slot with an 80/20 skew (a few slots
 * are picked far more often than the rest): a block there is read whole and freed; an
 * empty slot gets a new block of a random size up to about 1 KiB (each power of two half as
 * likely as the one below it), written whole. */
#include "common.h"

#define ITEMS (1u << 18)
#define ITER 10000000L
#define SIZE_EXP 10

static uint64_t state;

/* The tester's generator (an xorshift with a multiplied output). */
static uint32_t rng32(void) {
    uint64_t out = state * 0xd989bcacc137dcd5ULL;
    state ^= state >> 11;
    state ^= state << 31;
    state ^= state >> 18;
    return (uint32_t)(out >> 32);
}

static uint64_t rng64(void) {
    uint64_t hi = rng32();
    return (hi << 32) + rng32();
}

/* The size class (8-16, 16-32, ... bytes) from the lowest set bit of the low bits, so
 * each class is half as likely as the one below; then a uniform size within it. */
static size_t random_size(uint64_t r) {
    unsigned exp = SIZE_EXP - 3;
    uint32_t base = (uint32_t)(r & ((1u << exp) - 1)) + 1;
    r >>= exp;
    unsigned k = (unsigned)__builtin_ctz(base) + 2;
    return (size_t)(r & (((size_t)1 << k) - 1)) + 1 + ((size_t)1 << k);
}

/* The 80/20 skew over the slots, six times over: seven ranges of slots, the smallest
 * picked most often. */
static const double SKEW[7] = {0.262144, 0.393216, 0.245760, 0.081920,
                               0.015360, 0.001536, 0.000064};
static uint32_t limits[6], starts[8];

static void skew_init(uint32_t items) {
    limits[0] = (uint32_t)(UINT32_MAX * SKEW[0]);
    limits[5] = (uint32_t)(UINT32_MAX * (1. - SKEW[6]));
    for (int i = 1; i < 5; i++)
        limits[i] = limits[i - 1] + (uint32_t)(UINT32_MAX * SKEW[i]);
    starts[0] = 0;
    starts[7] = items;
    for (int i = 0; i < 6; i++)
        starts[i + 1] = starts[i] + (uint32_t)(items * SKEW[6 - i]);
}

static uint32_t skew_pick(uint32_t r1, uint32_t r2) {
    int range = 6;
    for (int i = 0; i < 6; i++)
        if (r1 < limits[i]) {
            range = i;
            break;
        }
    return starts[range] + r2 % (starts[range + 1] - starts[range]);
}

struct slot {
    unsigned char *p;
    size_t size;
};

static size_t checksum;

static void fill(struct slot *s, size_t size) {
    s->size = size;
    s->p = malloc(size);
    touch(s->p, 1);
    memset(s->p, (int)(size & 0xff), size);
}

static void drop(struct slot *s) {
    for (size_t i = 0; i < s->size; i++)
        checksum += s->p[i];
    free(s->p);
    s->p = NULL;
}

int main(void) {
    print_served_by();
    state = 41;
    skew_init(ITEMS);
    struct slot *slots = malloc(ITEMS * sizeof *slots);
    touch(slots, 1);
    memset(slots, 0, ITEMS * sizeof *slots);
    for (uint32_t i = 0; i < ITEMS / 32; i++) {
        uint32_t bits = rng32();
        for (int j = 0; j < 32; j++)
            if ((bits >> j) & 1)
                fill(&slots[i * 32 + j], random_size(rng64()));
    }
    for (long n = 0; n < ITER; n++) {
        uint32_t r1 = rng32(), r2 = rng32();
        struct slot *s = &slots[skew_pick(r1, r2)];
        if (s->p != NULL)
            drop(s);
        else
            fill(s, random_size(rng64()));
    }
    for (uint32_t i = 0; i < ITEMS; i++)
        if (slots[i].p != NULL)
            drop(&slots[i]);
    free(slots);
    printf("checksum=%zu\n", checksum);
    return 0;
}
