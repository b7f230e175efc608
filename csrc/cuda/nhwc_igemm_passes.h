// The passes that run on the channels_last implicit GEMM (nhwc_igemm/): which ones do,
// and the tensor-level work around the kernel (filters relaid out as KRSC, channels padded to
// 16 bytes, the dgrad filter flipped and transposed).
//
// fprop: every floating type (float16, bfloat16 and TF32 on tensor cores, IEEE float32 and
// float64 on CUDA cores) on sm_80 and later; every geometry but depthwise (which has kernels of
// its own), groups too small to fill a tile and activations whose padded relayouts would pass
// 2^31 elements. dgrad: the same, as correlations of grad_output with the flipped, transposed
// filter, one per stride phase of dx (at stride 1 a single one, at padding (R-1)*dil - pad,
// negative where it crops): each phase's GEMM takes only the filter taps that reach its pixels,
// so a strided dgrad multiplies no inserted zero. One launch per phase. Activations arrive and
// leave channels_last (conv_kernels.h); the filter may be in either memory format.
#pragma once

#include <ATen/core/Tensor.h>
#include <driver_types.h>

#include "../conv_params.h"

namespace convkernels::cuda {

bool nhwc_igemm_fprop_applies(const ConvParams& p, at::ScalarType dtype);
bool nhwc_igemm_dgrad_applies(const ConvParams& p, at::ScalarType dtype);

// allow_tf32: float32 multiplies in TF32 on tensor cores, else in IEEE float32 on CUDA cores.
void nhwc_igemm_fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                       const at::Tensor& bias, const at::Tensor& output, bool allow_tf32, cudaStream_t stream);
void nhwc_igemm_dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                       const at::Tensor& bias, const at::Tensor& grad_input, bool allow_tf32,
                       cudaStream_t stream);

}  // namespace convkernels::cuda
