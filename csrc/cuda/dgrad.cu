// CUDA dgrad: dx = conv_transpose(dy, w) + bias (conv_transpose2d's forward, conv2d's input
// gradient). Depthwise convolutions get the shared-memory stencil kernel over NCHW, the NHWC
// kernels over channels_last (depthwise_nhwc.h) but for large filters, which take the NCHW
// kernels through a relayout (half types: the tensor-core kernel, depthwise_mma.cuh; float32 and
// float64 where the staged NHWC kernel cannot hold them); the rest an implicit GEMM:
// the channels_last tensor-core one where it applies (nhwc_igemm_passes.h), else the
// generation-1 NCHW GEMM (general_dgrad.cuh).
#include <ATen/Dispatch.h>

#include "cuda_kernels.h"
#include "depthwise_dgrad.cuh"
#include "depthwise_nhwc.h"
#include "general_dgrad.cuh"
#include "relayout.h"
#include "nhwc_igemm_passes.h"

namespace convkernels::cuda {

void dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
           const at::Tensor& bias, const at::Tensor& grad_input, bool allow_tf32,
           cudaStream_t stream) {
  if (nhwc_igemm_dgrad_applies(p, grad_output.scalar_type())) {
    // NCHW callers relayout once in and once out, as cuDNN does on its tensor-core path.
    return write_in_format(grad_input, at::MemoryFormat::ChannelsLast, [&](const at::Tensor& relaid) {
      nhwc_igemm_dgrad(p, grad_output, weight, bias, relaid, allow_tf32, stream);
    });
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "cuda_dgrad", [&] {
    const scalar_t* dy = grad_output.const_data_ptr<scalar_t>();
    const scalar_t* w = weight.const_data_ptr<scalar_t>();
    scalar_t* dx = grad_input.mutable_data_ptr<scalar_t>();
    if (p.is_depthwise()) {
      depthwise_dgrad(p, dy, w, optional_data<scalar_t>(bias), dx, stream);
    } else {
      general_dgrad(p, dy, w, optional_data<scalar_t>(bias), dx, allow_tf32, stream);
    }
  });
}

void dgrad_channels_last(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                         const at::Tensor& bias, const at::Tensor& grad_input, bool allow_tf32,
                         cudaStream_t stream) {
  if (p.is_depthwise()) {
    if (!depthwise_mma_pays_for_relayout</*kInputGradient=*/true>(p, grad_output.scalar_type()) &&
        !depthwise_nhwc_through_nchw(p, grad_output.scalar_type())) {
      return depthwise_nhwc_dgrad(p, grad_output, weight, bias, grad_input, stream);
    }
    // Large filters: the NCHW kernels (tensor cores for half types), with a relayout in and out.
    return write_in_format(grad_input, at::MemoryFormat::Contiguous, [&](const at::Tensor& relaid) {
      dgrad(p, grad_output.contiguous(), weight.contiguous(), bias, relaid, allow_tf32, stream);
    });
  }
  if (nhwc_igemm_dgrad_applies(p, grad_output.scalar_type())) {
    return nhwc_igemm_dgrad(p, grad_output, weight, bias, grad_input, allow_tf32, stream);
  }
  write_in_format(grad_input, at::MemoryFormat::Contiguous, [&](const at::Tensor& relaid) {
    dgrad(p, grad_output.contiguous(), weight.contiguous(), bias, relaid, allow_tf32, stream);
  });
}

}  // namespace convkernels::cuda
