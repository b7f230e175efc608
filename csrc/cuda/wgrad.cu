// CUDA wgrad: dw = sum over n, p, q of dy * x. Deterministic: no floating-point atomics.
#include <ATen/Dispatch.h>

#include "cuda_kernels.h"
#include "depthwise_wgrad.cuh"
#include "general_wgrad.cuh"

namespace convkernels::cuda {

void wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
           const at::Tensor& grad_weight, bool allow_tf32, cudaStream_t stream) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cuda_wgrad", [&] {
    const scalar_t* x = input.const_data_ptr<scalar_t>();
    const scalar_t* dy = grad_output.const_data_ptr<scalar_t>();
    scalar_t* dw = grad_weight.mutable_data_ptr<scalar_t>();
    if (p.is_depthwise()) {
      depthwise_wgrad(p, x, dy, dw, stream);
    } else {
      general_wgrad(p, x, dy, dw, allow_tf32, stream);
    }
  });
}

}  // namespace convkernels::cuda
