/* Big realloc growth: a block grows from 1 MiB to 64 MiB by doubling, each new page
 * written once (the old contents must follow it), then freed; 20 times. An allocator
 * that can grow a mapping in place (mremap) copies nothing. */
#include "common.h"

int main(void) {
    print_served_by();
    for (int r = 0; r < 20; r++) {
        size_t size = 1 << 20;
        char *p = malloc(size);
        if (p == NULL)
            return 1;
        for (size_t o = 0; o < size; o += 4096)
            p[o] = (char)r;
        while (size < (64u << 20)) {
            char *q = realloc(p, size * 2);
            if (q == NULL || q[size - 4096] != (char)r)
                return 1;
            p = q;
            for (size_t o = size; o < size * 2; o += 4096)
                p[o] = (char)r;
            size *= 2;
        }
        free(p);
    }
    return 0;
}
