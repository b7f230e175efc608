// The passes that run on the channels_last tensor-core implicit GEMM (nhwc_igemm/): which ones do,
// and the tensor-level work around the kernel (filters relaid out as KRSC, channels padded to
// 16 bytes, the dgrad filter flipped and transposed).
//
// fprop: float16, bfloat16, and float32 where TF32 is allowed; every geometry but depthwise
// (which has kernels of its own). dgrad: the same, as correlations of grad_output with the flipped,
// transposed filter, one per stride phase of dx (at stride 1 a single one, at padding
// (R-1)*dil - pad, negative where it crops): each phase's GEMM takes only the filter taps that
// reach its pixels, so a strided dgrad multiplies no inserted zero. One launch per phase.
// Activations arrive and leave channels_last (conv_kernels.h); the filter may be in either
// memory format.
#pragma once

#include <ATen/core/Tensor.h>
#include <driver_types.h>

#include "../conv_params.h"

namespace convkernels::cuda {

bool tensor_core_fprop_applies(const ConvParams& p, at::ScalarType dtype, bool allow_tf32);
bool tensor_core_dgrad_applies(const ConvParams& p, at::ScalarType dtype, bool allow_tf32);

void tensor_core_fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                       const at::Tensor& bias, const at::Tensor& output, cudaStream_t stream);
void tensor_core_dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                       const at::Tensor& bias, const at::Tensor& grad_input, cudaStream_t stream);

}  // namespace convkernels::cuda
