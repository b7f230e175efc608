// StridePhase: one dimension of a stride phase of an input gradient (dgrad, conv_transpose2d's
// forward), as a correlation: the decomposition of CUTLASS's strided dgrad, which the implicit GEMM
// (nhwc_igemm_passes.cu) and the staged channels_last depthwise kernel
// (depthwise_nhwc/staged_problem.h) both compute by, so that no product is one with an inserted
// zero.
//
// dx row h = phase + stride * h' receives dy row p = (h + pad - r * dil) / stride from the filter
// taps r that make the division exact: taps spaced evenly by step = stride / gcd(stride, dil),
// whose rows of dy are dil / gcd(stride, dil) apart. Taken last tap first (the flipped filter),
// that is a stride-1 correlation of dy,
//   p = h' - pad' + j * dil',  tap j = 0, 1, ... is r = last - j * step,
// with dil' = step * dil / stride and pad' = (last * dil - phase - pad) / stride (negative where it
// crops dy). At stride 1 it is the whole flipped filter at pad' = (R - 1) * dil - pad.
#pragma once

#include <cstdint>

#include <c10/macros/Macros.h>

namespace convkernels::cuda {

struct StridePhase {
  int64_t outputs = 0;  // rows h' of the phase
  int64_t first = 0, last = 0, step = 1, count = 0;  // its taps: first, first + step, ..., last
  int64_t pad = 0, dil = 1;  // the correlation's

  C10_HOST_DEVICE StridePhase(int64_t phase, int64_t out, int64_t stride, int64_t pad_, int64_t taps, int64_t dil_) {
    outputs = phase < out ? (out - phase + stride - 1) / stride : 0;
    int64_t gcd = stride;
    for (int64_t b = dil_; b != 0;) {
      const int64_t r = gcd % b;
      gcd = b;
      b = r;
    }
    step = stride / gcd;
    dil = dil_ / gcd;
    for (first = 0; first < step && first < taps; ++first) {
      if ((phase + pad_ - first * dil_) % stride == 0) break;
    }
    if (first >= taps || first == step) return;  // no tap reaches the phase
    count = (taps - 1 - first) / step + 1;
    last = first + (count - 1) * step;
    pad = (last * dil_ - phase - pad_) / stride;
  }
};

}  // namespace convkernels::cuda
