// The plane correlation behind depthwise fprop, shared with the stride-1 depthwise dgrad.
//
// At stride 1 (and channel multiplier 1) the input gradient of a depthwise convolution is itself a
// depthwise forward convolution: dy correlated with each filter rotated by 180 degrees, at padding
// dil * (kernel - 1) - pad. depthwise_dgrad.cpp hands those cases to the forward kernels, so every
// forward fast path serves them too; the channels_last dgrad (depthwise_nhwc.cpp) does where its
// forward pads the input.
#pragma once

#include <ATen/core/Tensor.h>

#include "../conv_params.h"

namespace convkernels::cpu {

// The forward convolution that computes dx at stride 1 and multiplier 1: dy plays the input, dx
// the output, and the padding becomes dil * (kernel - 1) - pad, which must not be negative.
inline bool is_correlation(const ConvParams& p) {
  return p.stride_h == 1 && p.stride_w == 1 && p.K == p.C && p.dil_h * (p.R - 1) >= p.pad_h &&
         p.dil_w * (p.S - 1) >= p.pad_w;
}

inline ConvParams as_correlation(const ConvParams& p) {
  ConvParams q = p;
  q.H = p.P, q.W = p.Q, q.P = p.H, q.Q = p.W;
  q.pad_h = p.dil_h * (p.R - 1) - p.pad_h;
  q.pad_w = p.dil_w * (p.S - 1) - p.pad_w;
  q.shuffle_output = false;
  return q;
}

// output = bias + input (*) weight in the shapes of p (forward frame), each K x R x S filter read
// rotated by 180 degrees (w[k, R-1-r, S-1-s]) when `rotate`. Defined in depthwise_fprop.cpp.
void depthwise_correlate(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                         bool rotate, const at::Tensor& bias, const at::Tensor& output);

}  // namespace convkernels::cpu
