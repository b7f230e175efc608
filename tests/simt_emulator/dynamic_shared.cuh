// Dynamic shared memory, sized at launch, through the portable SIMT_DYNAMIC_SHARED spelling; two
// element types in one translation unit (which `extern __shared__ T name[]` alone would not allow).
#pragma once

#include "simt.h"

template <class T>
__global__ void reverse_each_block_kernel(const T* in, T* out) {
  SIMT_DYNAMIC_SHARED(T, tile);
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  tile[threadIdx.x] = in[i];
  __syncthreads();
  out[i] = tile[blockDim.x - 1 - threadIdx.x];
}

// Stores one float through simt::st_shared at `index` of a dynamic allocation of `floats` and
// loads it back: out of bounds where index is negative or past the allocation.
__global__ void shared_store_at_kernel(int index, float* out) {
  SIMT_DYNAMIC_SHARED(float, tile);
  simt::st_shared(tile + index, 1.0f);
  *out = simt::ld_shared(tile + index);
}

// Reverses every run of `block` elements; n must be a multiple of block.
template <class T>
void reverse_each_block(const T* in, T* out, int n, int block, cudaStream_t stream) {
  simt::launch(reverse_each_block_kernel<T>, dim3(n / block), dim3(block), block * sizeof(T), stream, in, out);
}

inline void reverse_each_block_float(const float* in, float* out, int n, int block, cudaStream_t stream) {
  reverse_each_block(in, out, n, block, stream);
}

inline void reverse_each_block_double(const double* in, double* out, int n, int block, cudaStream_t stream) {
  reverse_each_block(in, out, n, block, stream);
}
