// depthwise_nhwc_dgrad_kernel: the channels_last depthwise input gradient (conv_transpose2d's
// forward),
//   dx[n, h, w, c] = bias[c] + sum over m < M and over the taps (r, s) that reach (h, w) of
//                    w[k, r, s] * dy[n, oh, ow, k],   k = c*M + m,
// where tap (r, s) reaches (h, w) from output (oh, ow) = ((h + ph - r*dh) / sh, (w + pw - s*dw) / sw)
// when both divisions are exact and the output is in range.
//
// Only the taps that reach a pixel are visited: no products with the zeros a strided transposed
// convolution inserts. A thread computes an OutputTile (output_tile.cuh) of one stride phase in
// each dimension: rows h = fh + (v0 + i) * sh, i < kRows, and columns w = f + (u0 + j) * sw,
// j < kRun. A tap that reaches one of the columns reaches all, from consecutive dy columns
// ow = u0 + j + (f + pw - s*dw) / sw; a dy row feeds each of the rows through the filter row that
// joins them, if any. Taps are walked right to left, so at unit stride and dilation the dy window
// slides one column per tap (this is the fprop of the flipped filter with padding
// (R-1)*dil - pad). kWidth > 1 only at multiplier 1. Lanes are laid out as in fprop.
#pragma once

#include "../../conv_params.h"
#include "../launch.cuh"
#include "output_tile.cuh"

namespace convkernels::cuda {

template <typename T, int kWidth>
__global__ void depthwise_nhwc_dgrad_kernel(Grid first, ConvParams p, const T* __restrict__ dy,
                                            const T* __restrict__ filter, const T* __restrict__ bias,
                                            T* __restrict__ dx) {
  using namespace depthwise_nhwc;
  using acc_t = at::opmath_type<T>;
  const int64_t sh = p.stride_h, sw = p.stride_w;
  // Tiles per phase, sized for phase 0, the longest.
  const int64_t vectors = p.C / kWidth;
  const int64_t runs = ((p.W + sw - 1) / sw + kRun - 1) / kRun;
  const int64_t row_tiles = ((p.H + sh - 1) / sh + kRows - 1) / kRows;
  int64_t item = block_index(first).x * blockDim.x + threadIdx.x;
  if (item >= p.N * sh * row_tiles * sw * runs * vectors) return;
  const int64_t c = item % vectors * kWidth;
  item /= vectors;
  const int64_t u0 = item % runs * kRun;
  item /= runs;
  const int64_t f = item % sw;
  item /= sw;
  const int64_t v0 = item % row_tiles * kRows;
  item /= row_tiles;
  const int64_t fh = item % sh, n = item / sh;
  const int64_t multiplier = p.K / p.C;
  const int64_t h0 = fh + v0 * sh;  // row i of the tile is h0 + i * sh

  // The dy rows that reach any row of the tile: oh * sh = h + ph - r * dh for some r < R.
  const int64_t lowest = h0 + p.pad_h - (p.R - 1) * p.dil_h, highest = h0 + (kRows - 1) * sh + p.pad_h;
  const int64_t first_oh = lowest <= 0 ? 0 : (lowest + sh - 1) / sh;
  const int64_t last_oh = min(highest < 0 ? int64_t{-1} : highest / sh, p.P - 1);

  OutputTile<T, kWidth> tile(bias != nullptr ? load_channels<T, kWidth>(bias + c) : Lanes<acc_t, kWidth>{});
  for (int64_t oh = first_oh; oh <= last_oh; ++oh) {
    int64_t r[kRows];  // the filter row joining dy row oh to row i of the tile, or -1
    bool reaches = false;
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const int64_t h = h0 + i * sh;
      r[i] = h < p.H ? filter_row(h + p.pad_h - oh * sh, p.dil_h, p.R) : -1;
      reaches = reaches || r[i] >= 0;
    }
    if (!reaches) continue;
    for (int64_t k = c * multiplier; k < (c + 1) * multiplier; ++k) {
      const T* const row = dy + (n * p.P + oh) * p.Q * p.K + k;
      SourceWindow<T, kWidth> window;
      for (int64_t s = p.S - 1; s >= 0; --s) {
        const int64_t cols_right = f + p.pad_w - s * p.dil_w;
        if (cols_right % sw != 0) continue;  // exact, whatever the sign
        window.move_to(u0 + cols_right / sw, 1,
                       [&](int64_t col) { return load_pixel<T, kWidth>(row, p.Q, p.K, col); });
#pragma unroll
        for (int i = 0; i < kRows; ++i) {
          if (r[i] >= 0) tile.add(i, load_channels<T, kWidth>(filter + (r[i] * p.S + s) * p.K + k), window);
        }
      }
    }
  }
  const int64_t w0 = f + u0 * sw;
  if (w0 >= p.W) return;
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
    const int64_t h = h0 + i * sh;
    if (h < p.H) tile.store(i, dx + ((n * p.H + h) * p.W + w0) * p.C + c, sw * p.C, (p.W - w0 + sw - 1) / sw);
  }
}

}  // namespace convkernels::cuda
