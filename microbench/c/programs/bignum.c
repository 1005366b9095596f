/* A bignum-style churn: arbitrary-precision arithmetic that allocates a fresh limb array
 * for every result and frees its operands (small blocks of many sizes, short lives). */
#include "common.h"
typedef struct { size_t n; uint32_t *limb; } num;

static num make(size_t n) {
    num x = {n, malloc(n * sizeof(uint32_t))};
    touch(x.limb, n * sizeof(uint32_t));
    return x;
}

static num add(num a, num b) {
    size_t n = (a.n > b.n ? a.n : b.n) + 1;
    num r = make(n);
    uint64_t carry = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t s = carry + (i < a.n ? a.limb[i] : 0) + (i < b.n ? b.limb[i] : 0);
        r.limb[i] = (uint32_t)s;
        carry = s >> 32;
    }
    while (r.n > 1 && r.limb[r.n - 1] == 0)
        r.n--;
    return r;
}

int main(void) {
    print_served_by();
    uint64_t checksum = 0;
    for (int round = 0; round < 24000; round++) {
        /* Fibonacci numbers up to a few hundred limbs, every intermediate a new block. */
        num a = make(1), b = make(1);
        a.limb[0] = 0;
        b.limb[0] = 1;
        for (int i = 0; i < 400 + round % 200; i++) {
            num c = add(a, b);
            free(a.limb);
            a = b;
            b = c;
        }
        checksum += b.limb[0] + b.n;
        free(a.limb);
        free(b.limb);
    }
    printf("checksum %llu\n", (unsigned long long)checksum);
    return 0;
}
