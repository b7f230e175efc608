// The channels_last depthwise passes (groups == C_in, any multiplier): native NHWC kernels
// (depthwise_nhwc/), no relayout. Tensors as conv_kernels.h's channels_last contract.
#pragma once

#include <ATen/core/Tensor.h>
#include <driver_types.h>

#include "../conv_params.h"

namespace convkernels::cuda {

void depthwise_nhwc_fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                          const at::Tensor& bias, const at::Tensor& output, cudaStream_t stream);
void depthwise_nhwc_dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                          const at::Tensor& bias, const at::Tensor& grad_input, cudaStream_t stream);
void depthwise_nhwc_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                          const at::Tensor& grad_weight, cudaStream_t stream);

// Whether a float32 or float64 filter of 100 taps and more is better served, in every pass, by the
// NCHW kernels between two relayouts: where the staged forward kernel cannot hold its tile even at
// the full channel vector (31x31: the register-run kernels then read every tap's pixels from
// global memory; SIMT model, 8 channels at 32x32: 4.8x the FFMA floor forward, 3.0x the weight
// gradient, where the NCHW kernels reach it).
bool depthwise_nhwc_through_nchw(const ConvParams& p, at::ScalarType dtype);

}  // namespace convkernels::cuda
