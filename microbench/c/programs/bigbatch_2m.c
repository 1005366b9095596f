/* 200 blocks of 2048 KiB, allocated and freed together, 10 rounds (see bigbatch.h). */
#include "bigbatch.h"

int main(void) { return bigbatch((size_t)2048 << 10, 200, 10); }
