// The weight gradient as an im2col matrix product (wgrad_im2col.cpp): a route of general_wgrad
// for the shapes where it beats general_wgrad's own kernel, and general_wgrad_nhwc (declared in
// cpu_kernels.h), which stages its operands straight from channels_last activations.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "../conv_params.h"

namespace convkernels::cpu {

// Fewer output channels per group than this leave most of the lanes of the tiles idle.
inline constexpr int64_t kIm2colMinOutputs = 16;
// The least fraction of the (tap, output position) pairs that read inside the input.
inline constexpr double kIm2colMinInside = 0.45;

// Whether im2col_wgrad beats general_wgrad's own kernel on this shape.
bool im2col_wgrad_pays(const ConvParams& p);

void im2col_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                  const at::Tensor& grad_weight);

}  // namespace convkernels::cpu
