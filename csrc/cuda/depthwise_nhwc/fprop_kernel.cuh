// depthwise_nhwc_fprop_kernel: the channels_last depthwise forward,
//   y[n, p, q, k] = bias[k] + sum over r, s of w[k, r, s] * x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, k / M]
// (M = K / C, the channel multiplier).
//
// A thread computes an OutputTile (output_tile.cuh): rows p0 .. p0 + kRows - 1, columns
// q0 .. q0 + kRun - 1, kWidth channels (kWidth > 1 only at multiplier 1, where output channel k
// reads input channel k). It walks the input rows the tile reads, each once, and along each the
// taps left to right through a SourceWindow, with a tap's kWidth weights loaded as one vector from
// the filter transposed to [R*S][K]. The lanes of a warp take adjacent channel vectors first, then
// adjacent runs, so each request reads and writes whole channel rows of pixels.
#pragma once

#include "../../conv_params.h"
#include "../launch.cuh"
#include "output_tile.cuh"

namespace convkernels::cuda {

template <typename T, int kWidth>
__global__ void depthwise_nhwc_fprop_kernel(Grid first, ConvParams p, const T* __restrict__ x,
                                            const T* __restrict__ filter, const T* __restrict__ bias,
                                            T* __restrict__ y) {
  using namespace depthwise_nhwc;
  using acc_t = at::opmath_type<T>;
  const int64_t vectors = p.K / kWidth, runs = (p.Q + kRun - 1) / kRun, row_tiles = (p.P + kRows - 1) / kRows;
  int64_t item = block_index(first).x * blockDim.x + threadIdx.x;
  if (item >= p.N * row_tiles * runs * vectors) return;
  const int64_t k = item % vectors * kWidth;
  item /= vectors;
  const int64_t q0 = item % runs * kRun;
  item /= runs;
  const int64_t p0 = item % row_tiles * kRows, n = item / row_tiles;
  const int64_t multiplier = p.K / p.C, c = k / multiplier;

  OutputTile<T, kWidth> tile(bias != nullptr ? load_channels<T, kWidth>(bias + k) : Lanes<acc_t, kWidth>{});
  const int64_t top = p0 * p.stride_h - p.pad_h;
  const int64_t last = min(top + (kRows - 1) * p.stride_h + (p.R - 1) * p.dil_h, p.H - 1);
  for (int64_t ih = max(top, int64_t{0}); ih <= last; ++ih) {
    int64_t r[kRows];  // the filter row joining input row ih to output row p0 + i, or -1
    bool read = false;
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      r[i] = p0 + i < p.P ? filter_row(ih - top - i * p.stride_h, p.dil_h, p.R) : -1;
      read = read || r[i] >= 0;
    }
    if (!read) continue;
    const T* const row = x + (n * p.H + ih) * p.W * p.C + c;
    SourceWindow<T, kWidth> window;
    for (int64_t s = 0; s < p.S; ++s) {
      window.move_to(q0 * p.stride_w - p.pad_w + s * p.dil_w, p.stride_w,
                     [&](int64_t col) { return load_pixel<T, kWidth>(row, p.W, p.C, col); });
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        if (r[i] >= 0) tile.add(i, load_channels<T, kWidth>(filter + (r[i] * p.S + s) * p.K + k), window);
      }
    }
  }
  const int64_t channel = p.output_channel(c, k - c * multiplier);
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
    if (p0 + i < p.P) tile.store(i, y + ((n * p.P + p0 + i) * p.Q + q0) * p.K + channel, p.K, p.Q - q0);
  }
}

}  // namespace convkernels::cuda
