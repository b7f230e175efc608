// Warp collectives: reductions by __shfl_down_sync and __shfl_xor_sync, CUDA's lane arithmetic for
// every shuffle (widths below 32 split the warp into segments), partial masks, 8-byte and half
// values, votes and __syncwarp.
#pragma once

#include "simt.h"

constexpr unsigned kFullMask = 0xffffffffu;

// The sum of the warp's 32 values, complete in lane 0.
__device__ __forceinline__ int warp_sum_to_lane_0(int v) {
#pragma unroll
  for (int delta = 16; delta > 0; delta /= 2) v += __shfl_down_sync(kFullMask, v, delta);
  return v;
}

// sums[w] = sum of the 32 values of warp w.
__global__ void warp_sum_down_kernel(const int* in, int* sums) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  const int sum = warp_sum_to_lane_0(in[i]);
  if (threadIdx.x % warpSize == 0) sums[i / warpSize] = sum;
}

// Every lane of warp w ends with the warp's sum (butterfly), in double precision.
__global__ void warp_sum_xor_kernel(const double* in, double* sums) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  double v = in[i];
  for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2) v += __shfl_xor_sync(kFullMask, v, lane_mask);
  sums[i] = v;
}

// One row of results per shuffle flavour, each on the lane values in[]:
//   0: __shfl_sync(srcLane 3, width 16)          3: __shfl_down_sync(delta 4, width 16)
//   1: __shfl_sync(srcLane 19, width 16)         4: __shfl_xor_sync(laneMask 8, width 8)
//   2: __shfl_up_sync(delta 2, width 8)          5: __shfl_down_sync(delta 1, width 16), lanes 0-15 only
__global__ void shuffle_flavours_kernel(const int* in, int* out) {
  const unsigned i = threadIdx.x;
  const unsigned n = blockDim.x;
  const int v = in[i];
  out[0 * n + i] = __shfl_sync(kFullMask, v, 3, 16);
  out[1 * n + i] = __shfl_sync(kFullMask, v, 19, 16);
  out[2 * n + i] = __shfl_up_sync(kFullMask, v, 2, 8);
  out[3 * n + i] = __shfl_down_sync(kFullMask, v, 4, 16);
  out[4 * n + i] = __shfl_xor_sync(kFullMask, v, 8, 8);
  out[5 * n + i] = i % 32 < 16 ? __shfl_down_sync(0x0000ffffu, v, 1, 16) : -1;
}

// out[i] = the value of lane 0 of i's warp, moved as a __half.
__global__ void broadcast_half_kernel(const __half* in, __half* out) {
  out[threadIdx.x] = __shfl_sync(kFullMask, in[threadIdx.x], 0);
}

// Per lane: the ballot of "lane % 3 == 0", and whether any / all lanes of its warp hold a flag.
__global__ void votes_kernel(const int* flags, unsigned* ballots, int* any, int* all) {
  const unsigned i = threadIdx.x;
  ballots[i] = __ballot_sync(kFullMask, i % 32 % 3 == 0);
  any[i] = __any_sync(kFullMask, flags[i]);
  all[i] = __all_sync(kFullMask, flags[i]);
}

// out[i] = in[i + 1] within each warp (rotating), through shared memory ordered by __syncwarp alone.
__global__ void rotate_within_warp_kernel(const int* in, int* out) {
  __shared__ int staged[64];
  const unsigned i = threadIdx.x;
  staged[i] = in[i];
  __syncwarp();
  out[i] = staged[i - i % 32 + (i + 1) % 32];
}

inline void warp_sum_down(const int* in, int* sums, int n, cudaStream_t stream) {
  simt::launch(warp_sum_down_kernel, dim3(n / 128), dim3(128), 0, stream, in, sums);
}
inline void warp_sum_xor(const double* in, double* sums, int n, cudaStream_t stream) {
  simt::launch(warp_sum_xor_kernel, dim3(n / 64), dim3(64), 0, stream, in, sums);
}
inline void shuffle_flavours(const int* in, int* out, int threads, cudaStream_t stream) {
  simt::launch(shuffle_flavours_kernel, dim3(1), dim3(threads), 0, stream, in, out);
}
inline void broadcast_half(const __half* in, __half* out, int threads, cudaStream_t stream) {
  simt::launch(broadcast_half_kernel, dim3(1), dim3(threads), 0, stream, in, out);
}
inline void votes(const int* flags, unsigned* ballots, int* any, int* all, int threads, cudaStream_t stream) {
  simt::launch(votes_kernel, dim3(1), dim3(threads), 0, stream, flags, ballots, any, all);
}
inline void rotate_within_warp(const int* in, int* out, cudaStream_t stream) {
  simt::launch(rotate_within_warp_kernel, dim3(1), dim3(64), 0, stream, in, out);
}
