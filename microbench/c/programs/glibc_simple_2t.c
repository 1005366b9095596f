#define THREADS 2
#include "glibc_simple.c"
