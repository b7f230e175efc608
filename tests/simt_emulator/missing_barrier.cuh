// A deliberately broken kernel: each thread stores its element in shared memory and reads its left
// neighbour's, with no __syncthreads() in between. The forward schedule runs thread t-1 up to its
// exit before thread t starts, which hides the bug; reversed and random schedules expose it, and
// under ThreadSanitizer in OS-thread mode it is a reported data race.
#pragma once

#include "simt.h"

__global__ void shift_right_without_barrier_kernel(const int* in, int* out) {
  __shared__ int tile[128];
  const int t = threadIdx.x;
  const int i = blockIdx.x * blockDim.x + t;
  tile[t] = in[i];
  // The missing __syncthreads() belongs here.
  out[i] = t > 0 ? tile[t - 1] : tile[t];
}

// Meant to compute out[i] = in[i - 1] within each block of 128 (out[i] = in[i] for the first).
inline void shift_right_without_barrier(const int* in, int* out, int blocks, cudaStream_t stream) {
  simt::launch(shift_right_without_barrier_kernel, dim3(blocks), dim3(128), 0, stream, in, out);
}
