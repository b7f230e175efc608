// The CUDA backend: the kernel ops for CUDA tensors, on the tensors' device and its current stream.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../conv_ops.h"
#include "cuda_kernels.h"

namespace convkernels::cuda {
namespace {

void fprop_on_device(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& output) {
  const c10::cuda::CUDAGuard guard(input.device());
  fprop(p, input, weight, bias, output, at::cuda::getCurrentCUDAStream());
}

void dgrad_on_device(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& grad_input) {
  const c10::cuda::CUDAGuard guard(grad_output.device());
  dgrad(p, grad_output, weight, bias, grad_input, at::cuda::getCurrentCUDAStream());
}

void wgrad_on_device(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                     const at::Tensor& grad_weight) {
  const c10::cuda::CUDAGuard guard(input.device());
  wgrad(p, input, grad_output, grad_weight, at::cuda::getCurrentCUDAStream());
}

}  // namespace

const KernelSet kernels{fprop_on_device, dgrad_on_device, wgrad_on_device};

}  // namespace convkernels::cuda

TORCH_LIBRARY_IMPL(convkernels, CUDA, m) {
  convkernels::register_kernel_ops<convkernels::cuda::kernels>(m);
}
