// CUDA fprop: y = conv(x, w) + bias. Depthwise convolutions get the shared-memory stencil kernel;
// everything else (dense, grouped, 1x1) the implicit GEMM.
#include <ATen/Dispatch.h>

#include "cuda_kernels.h"
#include "depthwise_fprop.cuh"
#include "general_fprop.cuh"

namespace convkernels::cuda {

void fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
           const at::Tensor& bias, const at::Tensor& output, bool allow_tf32,
           cudaStream_t stream) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cuda_fprop", [&] {
    const scalar_t* x = input.const_data_ptr<scalar_t>();
    const scalar_t* w = weight.const_data_ptr<scalar_t>();
    scalar_t* y = output.mutable_data_ptr<scalar_t>();
    if (p.is_depthwise()) {
      depthwise_fprop(p, x, w, optional_data<scalar_t>(bias), y, stream);
    } else {
      general_fprop(p, x, w, optional_data<scalar_t>(bias), y, allow_tf32, stream);
    }
  });
}

}  // namespace convkernels::cuda
