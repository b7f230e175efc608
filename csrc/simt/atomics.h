// atomicAdd with CUDA's signatures (returns the old value; relaxed ordering, as on the GPU). Real
// atomics, because blocks may run on several OS threads at once.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace simt::detail {

template <class T>
T atomic_fetch_add(T* address, T value) {
  return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
}

// For types without a native atomic add: compare-and-swap on the value's bytes.
template <class T>
T atomic_add_by_cas(T* address, T value) {
  T old;
  __atomic_load(address, &old, __ATOMIC_RELAXED);
  T sum = old + value;
  while (!__atomic_compare_exchange(address, &old, &sum, /*weak=*/true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    sum = old + value;
  }
  return old;
}

}  // namespace simt::detail

inline int atomicAdd(int* address, int value) { return simt::detail::atomic_fetch_add(address, value); }
inline unsigned atomicAdd(unsigned* address, unsigned value) { return simt::detail::atomic_fetch_add(address, value); }
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  return simt::detail::atomic_fetch_add(address, value);
}
inline float atomicAdd(float* address, float value) { return simt::detail::atomic_add_by_cas(address, value); }
inline double atomicAdd(double* address, double value) { return simt::detail::atomic_add_by_cas(address, value); }
inline __half atomicAdd(__half* address, __half value) { return simt::detail::atomic_add_by_cas(address, value); }
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* address, __nv_bfloat16 value) {
  return simt::detail::atomic_add_by_cas(address, value);
}
