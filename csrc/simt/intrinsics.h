// Device intrinsics that have a direct CPU meaning, and the integer/floating min and max that CUDA
// device code gets without an include. Math functions come from <cmath>.
#pragma once

#include <cmath>
#include <type_traits>

#include "instrument.h"
#include "thread_context.h"

inline void __syncthreads() {
  auto& thread = simt::detail::this_thread();
  simt::detail::note_barrier();
  thread.block->sync_threads(thread.tid);
}

// Read-only data cache load: an ordinary load on the CPU.
template <class T>
inline T __ldg(const T* address) {
  return *address;
}

inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }

// CUDA overloads min/max for every arithmetic type; mixing types (min(int, unsigned)) compiles
// under nvcc but not here: cast one side.
template <class T, class = std::enable_if_t<std::is_arithmetic_v<T>>>
constexpr T min(T a, T b) {
  return b < a ? b : a;
}
template <class T, class = std::enable_if_t<std::is_arithmetic_v<T>>>
constexpr T max(T a, T b) {
  return a < b ? b : a;
}
