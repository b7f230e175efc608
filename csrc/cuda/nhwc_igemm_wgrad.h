// The weight gradient on the channels_last GEMM (nhwc_igemm/wgrad_kernel.cuh): which convolutions
// take it, and the tensor-level work around the kernel (activations relaid out as NHWC with each
// group's channels padded to 16 bytes, the split workspace).
//
// Every floating type (float16, bfloat16 and TF32 or 3xTF32 on tensor cores, IEEE float32 and
// float64 on CUDA cores, as the forward) where nhwc_igemm_operands_fit; depthwise convolutions
// have a kernel of their own. input and grad_output may come in either memory format (NCHW ones are
// relaid out once); grad_weight is K x C/g x R x S, the kernels' channels_last layout or a
// contiguous one (written through a copy, for NCHW callers).
#pragma once

#include <ATen/core/Tensor.h>
#include <driver_types.h>

#include "../conv_params.h"

namespace convkernels::cuda {

bool nhwc_igemm_wgrad_applies(const ConvParams& p, at::ScalarType dtype);

// allow_tf32: float32 multiplies in TF32 on tensor cores, else in IEEE float32 on CUDA cores.
void nhwc_igemm_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                      const at::Tensor& grad_weight, bool allow_tf32, cudaStream_t stream);

}  // namespace convkernels::cuda
