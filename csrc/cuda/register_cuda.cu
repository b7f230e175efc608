// The CUDA backend: the kernel ops for CUDA tensors, on the tensors' device and its current stream.
#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../conv_ops.h"
#include "cuda_kernels.h"

namespace convkernels::cuda {
namespace {

// As torch's own convolutions: float32 in TF32 where torch.backends.cudnn.allow_tf32 (cuDNN's
// convolution precision) allows it and the current GPU has TF32 tensor cores (sm_80+).
bool allows_tf32() {
  return at::globalContext().allowTF32CuDNN(at::Float32Op::CONV) &&
         at::cuda::getCurrentDeviceProperties()->major >= 8;
}

void fprop_on_device(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& output) {
  const c10::cuda::CUDAGuard guard(input.device());
  fprop(p, input, weight, bias, output, allows_tf32(), at::cuda::getCurrentCUDAStream());
}

void dgrad_on_device(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& grad_input) {
  const c10::cuda::CUDAGuard guard(grad_output.device());
  dgrad(p, grad_output, weight, bias, grad_input, allows_tf32(), at::cuda::getCurrentCUDAStream());
}

void wgrad_on_device(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                     const at::Tensor& grad_weight) {
  const c10::cuda::CUDAGuard guard(input.device());
  wgrad(p, input, grad_output, grad_weight, allows_tf32(), at::cuda::getCurrentCUDAStream());
}

void fprop_channels_last_on_device(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                                   const at::Tensor& bias, const at::Tensor& output) {
  const c10::cuda::CUDAGuard guard(input.device());
  fprop_channels_last(p, input, weight, bias, output, allows_tf32(), at::cuda::getCurrentCUDAStream());
}

void dgrad_channels_last_on_device(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                                   const at::Tensor& bias, const at::Tensor& grad_input) {
  const c10::cuda::CUDAGuard guard(grad_output.device());
  dgrad_channels_last(p, grad_output, weight, bias, grad_input, allows_tf32(), at::cuda::getCurrentCUDAStream());
}

void wgrad_channels_last_on_device(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                                   const at::Tensor& grad_weight) {
  const c10::cuda::CUDAGuard guard(input.device());
  wgrad_channels_last(p, input, grad_output, grad_weight, allows_tf32(), at::cuda::getCurrentCUDAStream());
}

}  // namespace

const KernelSet kernels{.fprop = fprop_on_device,
                        .dgrad = dgrad_on_device,
                        .wgrad = wgrad_on_device,
                        .fprop_channels_last = fprop_channels_last_on_device,
                        .dgrad_channels_last = dgrad_channels_last_on_device,
                        .wgrad_channels_last = wgrad_channels_last_on_device};

}  // namespace convkernels::cuda

TORCH_LIBRARY_IMPL(convkernels, CUDA, m) {
  convkernels::register_kernel_ops<convkernels::cuda::kernels>(m);
}
