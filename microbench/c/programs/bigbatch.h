/* Big-block batches: `count` blocks of `size` bytes allocated (one byte written per 4 KiB
 * page), then all freed; `rounds` times. A working set that a big-block tier should keep
 * mapped from one round to the next. */
#include "common.h"

static int bigbatch(size_t size, int count, int rounds) {
    print_served_by();
    char **blocks = malloc(sizeof(char *) * (size_t)count);
    if (blocks == NULL)
        return 1;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < count; i++) {
            blocks[i] = malloc(size);
            if (blocks[i] == NULL)
                return 1;
            for (size_t o = 0; o < size; o += 4096)
                blocks[i][o] = (char)r;
        }
        for (int i = 0; i < count; i++)
            free(blocks[i]);
    }
    free(blocks);
    return 0;
}
