// CUDA fprop: y = conv(x, w) + bias. Depthwise convolutions get the shared-memory stencil kernel
// over NCHW, the NHWC kernels over channels_last (depthwise_nhwc.h) but for large filters, which
// take the NCHW kernels through a relayout (half types: the tensor-core kernel, depthwise_mma.cuh;
// float32 and float64 where the staged NHWC kernel cannot hold them); everything else
// (dense, grouped, 1x1) an implicit GEMM: the channels_last tensor-core one where it applies
// (nhwc_igemm_passes.h), else the generation-1 NCHW GEMM (general_fprop.cuh).
#include <ATen/Dispatch.h>

#include "cuda_kernels.h"
#include "depthwise_fprop.cuh"
#include "depthwise_nhwc.h"
#include "general_fprop.cuh"
#include "relayout.h"
#include "nhwc_igemm_passes.h"

namespace convkernels::cuda {

void fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
           const at::Tensor& bias, const at::Tensor& output, bool allow_tf32,
           cudaStream_t stream) {
  if (nhwc_igemm_fprop_applies(p, input.scalar_type())) {
    // NCHW callers relayout once in and once out, as cuDNN does on its tensor-core path.
    return write_in_format(output, at::MemoryFormat::ChannelsLast, [&](const at::Tensor& relaid) {
      nhwc_igemm_fprop(p, input, weight, bias, relaid, allow_tf32, stream);
    });
  }
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

void fprop_channels_last(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                         const at::Tensor& bias, const at::Tensor& output, bool allow_tf32,
                         cudaStream_t stream) {
  if (p.is_depthwise()) {
    if (!depthwise_mma_pays_for_relayout</*kInputGradient=*/false>(p, input.scalar_type()) &&
        !depthwise_nhwc_through_nchw(p, input.scalar_type())) {
      return depthwise_nhwc_fprop(p, input, weight, bias, output, stream);
    }
    // Large filters: the NCHW kernels (tensor cores for half types), with a relayout in and out.
    return write_in_format(output, at::MemoryFormat::Contiguous, [&](const at::Tensor& relaid) {
      fprop(p, input.contiguous(), weight.contiguous(), bias, relaid, allow_tf32, stream);
    });
  }
  if (nhwc_igemm_fprop_applies(p, input.scalar_type())) {
    return nhwc_igemm_fprop(p, input, weight, bias, output, allow_tf32, stream);
  }
  write_in_format(output, at::MemoryFormat::Contiguous, [&](const at::Tensor& relaid) {
    fprop(p, input.contiguous(), weight.contiguous(), bias, relaid, allow_tf32, stream);
  });
}

}  // namespace convkernels::cuda
