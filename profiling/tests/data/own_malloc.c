/* A program with its own malloc (a bump allocator): every call in the process reaches it
 * before any preload's, so `hakprof sites` must say that the preload served nothing. */
#include <stddef.h>
#include <string.h>

static char arena[1 << 20] __attribute__((aligned(16)));
static size_t used;

void *malloc(size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n > sizeof arena - used)
        return NULL;
    void *p = arena + used;
    used += n;
    return p;
}

void free(void *p) { (void)p; }

void *calloc(size_t a, size_t b) {
    void *p = (b && a > (size_t)-1 / b) ? NULL : malloc(a * b);
    if (p)
        memset(p, 0, a * b);
    return p;
}

void *realloc(void *p, size_t n) {
    void *q = malloc(n);
    if (q && p) /* blocks only grow here: copying n bytes stays inside the arena's used part */
        memmove(q, p, (size_t)((char *)q - (char *)p) < n ? (size_t)((char *)q - (char *)p) : n);
    return q;
}

int main(void) {
    char *p = malloc(100);
    p[0] = 1;
    return p[0] - 1;
}
