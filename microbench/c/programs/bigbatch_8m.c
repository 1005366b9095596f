/* 50 blocks of 8192 KiB, allocated and freed together, 10 rounds (see bigbatch.h). */
#include "bigbatch.h"

int main(void) { return bigbatch((size_t)8192 << 10, 50, 10); }
