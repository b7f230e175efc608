// The built-in variables of a 3-D grid of 3-D blocks, and the warps they form; the grid of a
// persistent kernel.
#pragma once

#include "simt.h"

// One record per thread, at its linear global index: its block and thread coordinates packed a byte
// each, its warp in the block, and its lane.
__global__ void thread_coordinates_kernel(uint4* out) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned threads_per_block = blockDim.x * blockDim.y * blockDim.z;
  out[block * threads_per_block + thread] =
      make_uint4(blockIdx.x | blockIdx.y << 8 | blockIdx.z << 16, threadIdx.x | threadIdx.y << 8 | threadIdx.z << 16,
                 thread / warpSize, thread % warpSize);
}

inline void thread_coordinates(uint4* out, dim3 grid, dim3 block, cudaStream_t stream) {
  simt::launch(thread_coordinates_kernel, grid, block, 0, stream, out);
}

// A persistent kernel's grid, one block per SM: each block records the grid size it sees.
__global__ void grid_size_kernel(unsigned* out) {
  if (threadIdx.x == 0) out[blockIdx.x] = gridDim.x;
}

inline void one_block_per_multiprocessor(unsigned* out, cudaStream_t stream) {
  simt::launch(grid_size_kernel, dim3(simt::multiprocessor_count()), dim3(32), 0, stream, out);
}
