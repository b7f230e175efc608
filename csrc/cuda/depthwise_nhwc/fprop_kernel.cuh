// depthwise_nhwc_fprop_kernel: the channels_last depthwise forward,
//   y[n, p, q, k] = bias[k] + sum over r, s of w[k, r, s] * x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, k / M]
// (M = K / C, the channel multiplier).
//
// A thread computes kRun adjacent outputs q0 .. q0 + kRun - 1 of one output row for kWidth
// channels (kWidth > 1 only at multiplier 1, where output channel k reads input channel k): per
// filter row it walks the taps left to right through a SourceWindow (output_run.cuh), with the
// tap's kWidth weights loaded as one vector from the filter transposed to [R*S][K]. The lanes of a
// warp take adjacent channel vectors first, then adjacent runs, so each request reads and writes
// whole channel rows of pixels.
#pragma once

#include "../../conv_params.h"
#include "../launch.cuh"
#include "output_run.cuh"

namespace convkernels::cuda {

template <typename T, int kWidth>
__global__ void depthwise_nhwc_fprop_kernel(Grid first, ConvParams p, const T* __restrict__ x,
                                            const T* __restrict__ filter, const T* __restrict__ bias,
                                            T* __restrict__ y) {
  using namespace depthwise_nhwc;
  using acc_t = at::opmath_type<T>;
  const int64_t vectors = p.K / kWidth, runs = (p.Q + kRun - 1) / kRun;
  int64_t item = block_index(first).x * blockDim.x + threadIdx.x;
  if (item >= p.N * p.P * runs * vectors) return;
  const int64_t k = item % vectors * kWidth;
  item /= vectors;
  const int64_t q0 = item % runs * kRun;
  item /= runs;
  const int64_t oh = item % p.P, n = item / p.P;
  const int64_t multiplier = p.K / p.C, c = k / multiplier;

  OutputRun<T, kWidth> run(bias != nullptr ? load_channels<T, kWidth>(bias + k) : Lanes<acc_t, kWidth>{});
  for (int64_t r = 0; r < p.R; ++r) {
    const int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
    if (ih < 0 || ih >= p.H) continue;
    const T* const row = x + (n * p.H + ih) * p.W * p.C + c;
    SourceWindow<T, kWidth> window;
    for (int64_t s = 0; s < p.S; ++s) {
      window.move_to(row, p.W, p.C, q0 * p.stride_w - p.pad_w + s * p.dil_w, p.stride_w);
      run.add(load_channels<T, kWidth>(filter + (r * p.S + s) * p.K + k), window);
    }
  }
  T* const dst = y + ((n * p.P + oh) * p.Q + q0) * p.K + p.output_channel(c, k - c * multiplier);
  run.store(dst, p.K, p.Q - q0);
}

}  // namespace convkernels::cuda
