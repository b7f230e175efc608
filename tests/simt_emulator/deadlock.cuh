// Kernels that can never finish (or misuse a warp collective): the emulator must say so, never hang.
#pragma once

#include "simt.h"

// The first warp exits early; the other threads wait at a barrier it will never reach.
__global__ void barrier_after_early_exit_kernel(int* out) {
  if (threadIdx.x < 32) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

// Half of each warp shuffles with the full mask while the other half waits at __syncthreads.
__global__ void shuffle_with_absent_lanes_kernel(int* out) {
  int v = threadIdx.x;
  if (threadIdx.x % 32 < 16) v = __shfl_down_sync(0xffffffffu, v, 1);
  __syncthreads();
  out[threadIdx.x] = v;
}

// Lanes named in one mask calling different collectives.
__global__ void mismatched_collectives_kernel(int* out) {
  int v = threadIdx.x;
  if (threadIdx.x < 16) {
    __syncwarp();
  } else {
    v = __shfl_sync(0xffffffffu, v, 0);
  }
  out[threadIdx.x] = v;
}

// A mask that leaves out the calling lane.
__global__ void mask_excludes_caller_kernel(int* out) {
  out[threadIdx.x] = __shfl_sync(1u << (threadIdx.x % 32 + 1) % 32, static_cast<int>(threadIdx.x), 0);
}

inline void barrier_after_early_exit(int* out, cudaStream_t stream) {
  simt::launch(barrier_after_early_exit_kernel, dim3(2), dim3(64), 0, stream, out);
}
inline void shuffle_with_absent_lanes(int* out, cudaStream_t stream) {
  simt::launch(shuffle_with_absent_lanes_kernel, dim3(2), dim3(64), 0, stream, out);
}
inline void mismatched_collectives(int* out, cudaStream_t stream) {
  simt::launch(mismatched_collectives_kernel, dim3(1), dim3(32), 0, stream, out);
}
inline void mask_excludes_caller(int* out, cudaStream_t stream) {
  simt::launch(mask_excludes_caller_kernel, dim3(1), dim3(32), 0, stream, out);
}
