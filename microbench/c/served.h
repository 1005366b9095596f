/* Which allocator serves this process: the file that defines the `malloc` the dynamic
 * linker bound (under LD_PRELOAD, the preloaded library; otherwise glibc's libc.so.6).
 * Every C program of the suite prints it, and the runners check it before they believe a
 * measurement (the original hakmem's benchmarks once measured glibc without knowing). */
#ifndef HAKMEM_SERVED_H
#define HAKMEM_SERVED_H
#ifndef _GNU_SOURCE /* g++ defines it */
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

static const char *served_by(void) {
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (m == NULL || dladdr(m, &info) == 0 || info.dli_fname == NULL)
        return "unknown";
    return info.dli_fname;
}

/* Two lines on stderr, `served_by=<library path>` and `pid=<process id>` (to find the
 * process's stats file), read by the runners. */
static void print_served_by(void) {
    fprintf(stderr, "served_by=%s\npid=%d\n", served_by(), (int)getpid());
}

#endif
