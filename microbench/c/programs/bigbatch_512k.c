/* 1000 blocks of 512 KiB, allocated and freed together, 10 rounds (see bigbatch.h). */
#include "bigbatch.h"

int main(void) { return bigbatch((size_t)512 << 10, 1000, 10); }
