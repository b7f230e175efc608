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

}  // namespace convkernels::cuda
