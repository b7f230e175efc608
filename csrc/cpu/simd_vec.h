// Vec<T>: 32 bytes of T as one GCC/Clang vector value, which is one ymm register under -mavx2.
//
// The register-tiled kernels (pointwise_tile.h, the depthwise fprop tile) write their tiles with it
// explicitly: left to themselves, the compilers spill a 2-D accumulator array of scalars to the
// stack, or fuse tap loops into a scalar loop, instead of keeping the tile in registers.
#pragma once

#include <cstdint>

namespace convkernels::cpu {

template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(32)));
  static constexpr int64_t lanes = 32 / sizeof(T);

  static type splat(T x) { return type{} + x; }
  static type load(const T* p) {
    type v;
    __builtin_memcpy(&v, p, sizeof(v));  // unaligned load
    return v;
  }
  static void store(T* p, type v) { __builtin_memcpy(p, &v, sizeof(v)); }
};

}  // namespace convkernels::cpu
