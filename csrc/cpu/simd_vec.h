// Vec<T, Bytes>: Bytes (32 unless a kernel asks for kWideVectorBytes) of T as one GCC/Clang vector
// value, which is one ymm register under -mavx2 (one zmm for 64 bytes under AVX-512).
//
// The register-tiled kernels (pointwise_tile.h, the depthwise fprop tile) write their tiles with it
// explicitly: left to themselves, the compilers spill a 2-D accumulator array of scalars to the
// stack, or fuse tap loops into a scalar loop, instead of keeping the tile in registers.
#pragma once

#include <cstdint>

#include <immintrin.h>

namespace convkernels::cpu {

// The widest vector the target has: one zmm (64 bytes) with AVX-512, else one ymm.
#ifdef __AVX512F__
inline constexpr int64_t kWideVectorBytes = 64;
#else
inline constexpr int64_t kWideVectorBytes = 32;
#endif

template <typename T, int64_t Bytes = 32>
struct Vec {
  typedef T type __attribute__((vector_size(Bytes)));
  static constexpr int64_t lanes = Bytes / sizeof(T);

  static type splat(T x) { return type{} + x; }
  static type load(const T* p) {
    type v;
    __builtin_memcpy(&v, p, sizeof(v));  // unaligned load
    return v;
  }
  static void store(T* p, type v) { __builtin_memcpy(p, &v, sizeof(v)); }
};

// Stores v at p past the caches (a non-temporal store) where that exists for V and p is aligned
// to it, else plainly: for outputs much larger than the caches, which would only evict what the
// kernel still reads, and whose lines need not be read before they are written.
template <typename T, int64_t Bytes>
inline void stream_store(T* p, typename Vec<T, Bytes>::type v) {
#ifdef __AVX512F__
  if constexpr (Bytes == 64 && sizeof(T) == 4) {
    if (reinterpret_cast<uintptr_t>(p) % 64 == 0) {
      return _mm512_stream_ps(reinterpret_cast<float*>(p), reinterpret_cast<__m512>(v));
    }
  }
#endif
  Vec<T, Bytes>::store(p, v);
}

// Orders the streaming stores before what follows (another thread's reads of the output).
inline void store_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace convkernels::cpu
