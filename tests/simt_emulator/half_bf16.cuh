// __half and __nv_bfloat16 arithmetic through CUDA's own headers, accumulating in float.
#pragma once

#include "simt.h"

// y = a x + y elementwise in T; dot[0] = sum of x y computed in float.
template <class T>
__global__ void axpy_and_dot_kernel(T a, const T* x, T* y, float* dot, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const T product = x[i] * y[i];
  y[i] = a * x[i] + y[i];
  atomicAdd(dot, static_cast<float>(product));
}

template <class T>
void axpy_and_dot(T a, const T* x, T* y, float* dot, int n, cudaStream_t stream) {
  simt::launch(axpy_and_dot_kernel<T>, dim3((n + 63) / 64), dim3(64), 0, stream, a, x, y, dot, n);
}

inline void axpy_and_dot_half(__half a, const __half* x, __half* y, float* dot, int n, cudaStream_t stream) {
  axpy_and_dot(a, x, y, dot, n, stream);
}

inline void axpy_and_dot_bf16(__nv_bfloat16 a, const __nv_bfloat16* x, __nv_bfloat16* y, float* dot, int n,
                              cudaStream_t stream) {
  axpy_and_dot(a, x, y, dot, n, stream);
}
