// A block-wide sum: a tree in static shared memory, one __syncthreads() per level.
#pragma once

#include "simt.h"

template <int kThreads>
__global__ void __launch_bounds__(kThreads) block_sum_kernel(const float* __restrict__ in, float* __restrict__ block_sums, int n) {
  __shared__ float partial[kThreads];
  const int t = threadIdx.x;
  const int i = blockIdx.x * kThreads + t;
  partial[t] = i < n ? __ldg(&in[i]) : 0.0f;
  __syncthreads();
#pragma unroll
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (t < stride) partial[t] += partial[t + stride];
    __syncthreads();
  }
  if (t == 0) block_sums[blockIdx.x] = partial[0];
}

// block_sums[b] = sum of in[256 b .. 256 b + 255] (past n counts as zero).
inline void block_sum(const float* in, float* block_sums, int n, cudaStream_t stream) {
  constexpr int kThreads = 256;
  simt::launch(block_sum_kernel<kThreads>, dim3((n + kThreads - 1) / kThreads), dim3(kThreads), 0, stream, in,
               block_sums, n);
}
