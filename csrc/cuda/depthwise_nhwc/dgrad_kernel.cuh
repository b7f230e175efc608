// depthwise_nhwc_dgrad_kernel: the channels_last depthwise input gradient (conv_transpose2d's
// forward),
//   dx[n, h, w, c] = bias[c] + sum over m < M and over the taps (r, s) that reach (h, w) of
//                    w[k, r, s] * dy[n, oh, ow, k],   k = c*M + m,
// where tap (r, s) reaches (h, w) from output (oh, ow) = ((h + ph - r*dh) / sh, (w + pw - s*dw) / sw)
// when both divisions are exact and the output is in range.
//
// Only the taps that reach a pixel are visited: no products with the zeros a strided transposed
// convolution inserts. A thread computes kRun input columns of one stride phase f,
// w = f + (u0 + j) * sw for j < kRun: a tap that reaches one of them reaches all, from consecutive
// dy columns ow = u0 + j + (f + pw - s*dw) / sw. Taps are walked right to left, so at unit stride
// and dilation the dy window slides one column per tap (this is the fprop of the flipped filter
// with padding (R-1)*dil - pad). kWidth > 1 only at multiplier 1. Lanes are laid out as in fprop.
#pragma once

#include "../../conv_params.h"
#include "../launch.cuh"
#include "output_run.cuh"

namespace convkernels::cuda {

template <typename T, int kWidth>
__global__ void depthwise_nhwc_dgrad_kernel(Grid first, ConvParams p, const T* __restrict__ dy,
                                            const T* __restrict__ filter, const T* __restrict__ bias,
                                            T* __restrict__ dx) {
  using namespace depthwise_nhwc;
  using acc_t = at::opmath_type<T>;
  const int64_t vectors = p.C / kWidth;
  const int64_t phase_cols = (p.W + p.stride_w - 1) / p.stride_w;  // columns of phase 0, the longest
  const int64_t runs = (phase_cols + kRun - 1) / kRun;
  int64_t item = block_index(first).x * blockDim.x + threadIdx.x;
  if (item >= p.N * p.H * p.stride_w * runs * vectors) return;
  const int64_t c = item % vectors * kWidth;
  item /= vectors;
  const int64_t u0 = item % runs * kRun;
  item /= runs;
  const int64_t f = item % p.stride_w;
  item /= p.stride_w;
  const int64_t h = item % p.H, n = item / p.H;
  const int64_t multiplier = p.K / p.C;

  OutputRun<T, kWidth> run(bias != nullptr ? load_channels<T, kWidth>(bias + c) : Lanes<acc_t, kWidth>{});
  for (int64_t k = c * multiplier; k < (c + 1) * multiplier; ++k) {
    for (int64_t r = 0; r < p.R; ++r) {
      const int64_t rows_down = h + p.pad_h - r * p.dil_h;
      if (rows_down < 0 || rows_down % p.stride_h != 0 || rows_down / p.stride_h >= p.P) continue;
      const T* const row = dy + (n * p.P + rows_down / p.stride_h) * p.Q * p.K + k;
      SourceWindow<T, kWidth> window;
      for (int64_t s = p.S - 1; s >= 0; --s) {
        const int64_t cols_right = f + p.pad_w - s * p.dil_w;
        if (cols_right % p.stride_w != 0) continue;  // exact, whatever the sign
        window.move_to(row, p.Q, p.K, u0 + cols_right / p.stride_w, 1);
        run.add(load_channels<T, kWidth>(filter + (r * p.S + s) * p.K + k), window);
      }
    }
  }
  const int64_t w0 = f + u0 * p.stride_w;
  if (w0 >= p.W) return;
  run.store(dx + ((n * p.H + h) * p.W + w0) * p.C + c, p.stride_w * p.C, (p.W - w0 + p.stride_w - 1) / p.stride_w);
}

}  // namespace convkernels::cuda
