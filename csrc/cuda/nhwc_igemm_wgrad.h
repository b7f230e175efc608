// The weight gradient on the channels_last tensor-core GEMM (nhwc_igemm/wgrad_kernel.cuh): which
// convolutions take it, and the tensor-level work around the kernel (activations relaid out as
// NHWC with each group's channels padded to 16 bytes, the split workspace).
//
// float16, bfloat16, and float32 where TF32 is allowed; every geometry but depthwise (which has a
// kernel of its own). input and grad_output may come in either memory format (NCHW ones are
// relaid out once); grad_weight is the contiguous K x C/g x R x S weight (conv_kernels.h).
#pragma once

#include <ATen/core/Tensor.h>
#include <driver_types.h>

#include "../conv_params.h"

namespace convkernels::cuda {

bool nhwc_igemm_wgrad_applies(const ConvParams& p, at::ScalarType dtype, bool allow_tf32);

void nhwc_igemm_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                       const at::Tensor& grad_weight, cudaStream_t stream);

}  // namespace convkernels::cuda
