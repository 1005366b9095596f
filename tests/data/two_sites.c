/* Two call sites allocating 2 MiB blocks in a loop: the learning layer must see two
 * sites, and the BigCache must serve both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static char *site_a(void) { return malloc(2 << 20); }
__attribute__((noinline)) static char *site_b(void) { return malloc(2 << 20); }

int main(void) {
    long sum = 0;
    for (int i = 0; i < 50; i++) {
        char *a = site_a();
        char *b = site_b();
        memset(a, i, 2 << 20);
        memset(b, i + 1, 2 << 20);
        sum += a[12345] + b[(2 << 20) - 1];
        free(a);
        free(b);
    }
    printf("%ld\n", sum);
    return 0;
}
