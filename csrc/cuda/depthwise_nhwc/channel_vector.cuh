// ChannelVector: kWidth adjacent channels of one pixel of a channels_last (NHWC) tensor, moved as
// one access and computed in acc_t (float for the half types). At the full width a vector is 16
// bytes (8 half, 4 float, 2 double): one LDG.E.128 / STG.E.128 per lane, so a warp whose lanes
// cover 512 contiguous bytes touches 16 whole sectors. channel_vector_width says when the full
// width is allowed; otherwise the kernels run with kWidth = 1 (plain element accesses).
#pragma once

#include <cstdint>
#include <initializer_list>

#include <ATen/OpMathType.h>

#include "../../simt/simt.h"

namespace convkernels::cuda::depthwise_nhwc {

template <typename T>
constexpr int kFullWidth = 16 / sizeof(T);

template <typename T, int kWidth>
struct alignas(sizeof(T) * kWidth) ChannelVector {
  T v[kWidth];
};

// kWidth values in registers, one per channel (value-initialised: zeros).
template <typename acc_t, int kWidth>
struct Lanes {
  acc_t v[kWidth];
};

// A vector's channels in acc_t.
template <typename T, int kWidth>
__device__ __forceinline__ Lanes<at::opmath_type<T>, kWidth> to_lanes(const ChannelVector<T, kWidth>& in) {
  Lanes<at::opmath_type<T>, kWidth> out;
#pragma unroll
  for (int i = 0; i < kWidth; ++i) out.v[i] = static_cast<at::opmath_type<T>>(in.v[i]);
  return out;
}

// The kWidth channels at `src` (aligned to the vector), in acc_t.
template <typename T, int kWidth>
__device__ __forceinline__ Lanes<at::opmath_type<T>, kWidth> load_channels(const T* src) {
  return to_lanes(simt::ld_global(reinterpret_cast<const ChannelVector<T, kWidth>*>(src)));
}

template <typename T, int kWidth>
__device__ __forceinline__ void store_channels(T* dst, const Lanes<at::opmath_type<T>, kWidth>& values) {
  ChannelVector<T, kWidth> out;
#pragma unroll
  for (int i = 0; i < kWidth; ++i) out.v[i] = static_cast<T>(values.v[i]);
  simt::st_global(reinterpret_cast<ChannelVector<T, kWidth>*>(dst), out);
}

// The kWidth channels of pixel `col` of a source row of `width` pixels `pixel_stride` elements
// apart; zeros outside the row (padding).
template <typename T, int kWidth>
__device__ __forceinline__ Lanes<at::opmath_type<T>, kWidth> load_pixel(const T* row, int64_t width,
                                                                         int64_t pixel_stride, int64_t col) {
  if (col < 0 || col >= width) return {};
  return load_channels<T, kWidth>(row + col * pixel_stride);
}

// The full width where every channel row holds whole vectors (`channels` a multiple of it), each
// base pointer is aligned to it (a view of a storage can start anywhere) and each output channel
// reads one input channel at the same index (multiplier 1); else 1.
template <typename T>
int channel_vector_width(int64_t channels, int64_t multiplier,
                         std::initializer_list<const void*> pointers) {
  constexpr int64_t kBytes = sizeof(T) * kFullWidth<T>;
  bool full = multiplier == 1 && channels % kFullWidth<T> == 0;
  for (const void* pointer : pointers) {
    full = full && reinterpret_cast<std::uintptr_t>(pointer) % kBytes == 0;
  }
  return full ? kFullWidth<T> : 1;
}

}  // namespace convkernels::cuda::depthwise_nhwc
