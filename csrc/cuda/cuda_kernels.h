// The CUDA backend's three computations on tensors: dtype dispatch and kernel-family choice, then
// a launch on `stream`. Compiled twice from the same sources: by nvcc into convkernels._C for the
// GPU (cuda/*.cu), and by g++ into convkernels._simt, where the SIMT emulator runs the kernels on
// CPU tensors (simt_backend/*.cpp).
// allow_tf32: float32 implicit GEMMs may round their operands to TF32 and run on tensor cores (the
// caller decides, from torch's setting); float64 and the depthwise kernels never do.
#pragma once

#include <ATen/core/Tensor.h>
#include <driver_types.h>

#include "../conv_params.h"

namespace convkernels::cuda {

void fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
           const at::Tensor& bias, const at::Tensor& output, bool allow_tf32,
           cudaStream_t stream);
void dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
           const at::Tensor& bias, const at::Tensor& grad_input, bool allow_tf32,
           cudaStream_t stream);
// The same over channels_last activations (conv_kernels.h).
void fprop_channels_last(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                         const at::Tensor& bias, const at::Tensor& output, bool allow_tf32,
                         cudaStream_t stream);
void dgrad_channels_last(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                         const at::Tensor& bias, const at::Tensor& grad_input, bool allow_tf32,
                         cudaStream_t stream);
void wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
           const at::Tensor& grad_weight, bool allow_tf32, cudaStream_t stream);
void wgrad_channels_last(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                         const at::Tensor& grad_weight, bool allow_tf32, cudaStream_t stream);

// A nullptr for an absent (undefined) optional tensor.
template <typename T>
const T* optional_data(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<T>() : nullptr;
}

}  // namespace convkernels::cuda
