// OutputTile and SourceWindow: the kRows x kRun outputs (kRun adjacent along each of kRows rows)
// that one thread of the channels_last depthwise fprop and dgrad computes, kWidth channels each,
// accumulated in registers; and the kRun pixels of a source row they read through one filter tap.
//
// The kernels walk the source rows that any of the tile's rows reads, once each: a source row
// feeds each output row through the filter row that joins them (filter_row), so the kRows rows
// share its loads (at stride 1, kRows + R - 1 source rows instead of kRows * R). Along a source
// row they visit the taps in the order in which the window moves forward: tap after tap, output j
// reads the pixel that output j + 1 read through the previous tap whenever the column a tap adds
// equals the column an output adds (fprop: dilation == stride, so every 3x3 or 7x7 at stride 1;
// dgrad: unit stride and dilation). Then the window slides: one new 16-byte load per tap instead
// of kRun. Otherwise its kRun loads are independent, all in flight at once.
#pragma once

#include <cstdint>

#include "channel_vector.cuh"

namespace convkernels::cuda::depthwise_nhwc {

constexpr int kRun = 4;   // outputs per thread along a row
constexpr int kRows = 2;  // rows per thread

// The filter row r with r * dil == offset, or -1 where none (offset < 0, not a multiple of dil, or
// past the filter).
__device__ __forceinline__ int64_t filter_row(int64_t offset, int64_t dil, int64_t R) {
  return offset >= 0 && offset % dil == 0 && offset / dil < R ? offset / dil : -1;
}

// Columns are Index: int64_t in global memory, int in a staged patch.
template <typename T, int kWidth, typename Index = int64_t>
struct SourceWindow {
  Lanes<at::opmath_type<T>, kWidth> pixel[kRun] = {};  // pixel[j]: source column first + j * step
  Index first = 0;
  bool loaded = false;

  // Moves to source columns to, to + step, ..., whose pixels load(column) gives.
  template <class Load>
  __device__ __forceinline__ void move_to(Index to, Index step, Load load) {
    if (loaded && to == first + step) {
#pragma unroll
      for (int j = 0; j + 1 < kRun; ++j) pixel[j] = pixel[j + 1];
      pixel[kRun - 1] = load(to + (kRun - 1) * step);
    } else {
#pragma unroll
      for (int j = 0; j < kRun; ++j) pixel[j] = load(to + j * step);
    }
    first = to;
    loaded = true;
  }
};

template <typename T, int kWidth>
struct OutputTile {
  using acc_t = at::opmath_type<T>;
  Lanes<acc_t, kWidth> out[kRows][kRun];

  __device__ __forceinline__ explicit OutputTile(const Lanes<acc_t, kWidth>& init) {
#pragma unroll
    for (int row = 0; row < kRows; ++row) {
#pragma unroll
      for (int j = 0; j < kRun; ++j) out[row][j] = init;
    }
  }

  // out[row][j] += weight * window.pixel[j], channel by channel.
  template <typename Index>
  __device__ __forceinline__ void add(int row, const Lanes<acc_t, kWidth>& weight,
                                      const SourceWindow<T, kWidth, Index>& window) {
    simt::note_fma<acc_t>(kRun * kWidth);
#pragma unroll
    for (int j = 0; j < kRun; ++j) {
#pragma unroll
      for (int i = 0; i < kWidth; ++i) out[row][j].v[i] += weight.v[i] * window.pixel[j].v[i];
    }
  }

  // Stores out[row][j] at dst + j * pixel_stride for the first `count` outputs of the row. Indexed
  // as vectors (not as T* + j * pixel_stride, after which nvcc 13 splits the later stores into
  // 4-byte STG.E).
  __device__ __forceinline__ void store(int row, T* dst, int64_t pixel_stride, int64_t count) const {
    ChannelVector<T, kWidth>* const first = reinterpret_cast<ChannelVector<T, kWidth>*>(dst);
    const int64_t vector_stride = pixel_stride / kWidth;
#pragma unroll
    for (int j = 0; j < kRun; ++j) {
      if (j < count) store_channels<T, kWidth>(first[j * vector_stride].v, out[row][j]);
    }
  }
};

}  // namespace convkernels::cuda::depthwise_nhwc
