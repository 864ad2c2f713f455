/* The CUDA flavour of the test program: one kernel, so the binary carries device code. */
#include <cuda_runtime.h>

__global__ void touch(int *value) { *value = 1; }

#include "hello.c"
