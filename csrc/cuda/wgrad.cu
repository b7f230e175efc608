// CUDA wgrad: dw = sum over n, p, q of dy * x. Deterministic: no floating-point atomics.
// Depthwise convolutions get their own kernels (NCHW: depthwise_wgrad.cuh, with large half-type
// filters on tensor cores, depthwise_mma_wgrad.cuh; channels_last: depthwise_nhwc.h, a split
// reduction summed in a fixed order, but for large filters, relaid out as the forward's); everything
// else a GEMM of depth N*P*Q: the channels_last one where it applies (nhwc_igemm_wgrad.h; NCHW
// activations are relaid out for it, and its channels_last weight gradient copied to theirs), else
// the generation-1 NCHW GEMM (general_wgrad.cuh).
#include <ATen/Dispatch.h>

#include "cuda_kernels.h"
#include "depthwise_wgrad.cuh"
#include "depthwise_nhwc.h"
#include "general_wgrad.cuh"
#include "nhwc_igemm_wgrad.h"
#include "relayout.h"

namespace convkernels::cuda {

void wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
           const at::Tensor& grad_weight, bool allow_tf32, cudaStream_t stream) {
  if (nhwc_igemm_wgrad_applies(p, input.scalar_type())) {
    return nhwc_igemm_wgrad(p, input, grad_output, grad_weight, allow_tf32, stream);
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cuda_wgrad", [&] {
    const scalar_t* x = input.const_data_ptr<scalar_t>();
    const scalar_t* dy = grad_output.const_data_ptr<scalar_t>();
    scalar_t* dw = grad_weight.mutable_data_ptr<scalar_t>();
    if (p.is_depthwise()) {
      depthwise_wgrad(p, x, dy, dw, grad_weight.options(), stream);
    } else {
      general_wgrad(p, x, dy, dw, allow_tf32, stream);
    }
  });
}

void wgrad_channels_last(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                         const at::Tensor& grad_weight, bool allow_tf32, cudaStream_t stream) {
  if (p.is_depthwise()) {
    const at::ScalarType dtype = input.scalar_type();
    if (!depthwise_mma_wgrad_applies(p, dtype) && !depthwise_nhwc_through_nchw(p, dtype)) {
      return depthwise_nhwc_wgrad(p, input, grad_output, grad_weight, stream);
    }
    // Large filters through a relayout; the K x 1 x R x S weight gradient is the same memory in
    // either format.
    return wgrad(p, input.contiguous(), grad_output.contiguous(), grad_weight, allow_tf32, stream);
  }
  if (nhwc_igemm_wgrad_applies(p, input.scalar_type())) {
    return nhwc_igemm_wgrad(p, input, grad_output, grad_weight, allow_tf32, stream);
  }
  // The NCHW kernels write K x C/g x R x S.
  write_in_format(grad_weight, at::MemoryFormat::Contiguous, [&](const at::Tensor& dw) {
    wgrad(p, input.contiguous(), grad_output.contiguous(), dw, allow_tf32, stream);
  });
}

}  // namespace convkernels::cuda
