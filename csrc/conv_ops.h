// The semantics of the registered ops, written once for every backend: a backend registers these
// with its own KernelSet (cpu/register_cpu.cpp, cuda/register_cuda.cu, simt/register_simt.cpp).
#pragma once

#include <optional>

#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "conv_kernels.h"

namespace convkernels {

at::Tensor conv2d_op(const KernelSet& kernels, const at::Tensor& input, const at::Tensor& weight,
                     const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                     c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                     bool shuffle_output);

at::Tensor conv_transpose2d_op(const KernelSet& kernels, const at::Tensor& input,
                               const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                               c10::IntArrayRef stride, c10::IntArrayRef padding,
                               c10::IntArrayRef output_padding, int64_t groups,
                               c10::IntArrayRef dilation);

at::Tensor conv2d_weight_op(const KernelSet& kernels, const at::Tensor& input,
                            const at::Tensor& grad_output, c10::IntArrayRef weight_size,
                            c10::IntArrayRef stride, c10::IntArrayRef padding,
                            c10::IntArrayRef dilation, int64_t groups);

// Registers the three kernel ops of a library (inside a TORCH_LIBRARY_IMPL block) with a
// backend's KernelSet.
template <const KernelSet& kernels>
void register_kernel_ops(torch::Library& m) {
  m.impl("conv2d", [](const at::Tensor& input, const at::Tensor& weight,
                      const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                      c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                      bool shuffle_output) {
    return conv2d_op(kernels, input, weight, bias, stride, padding, dilation, groups,
                     shuffle_output);
  });
  m.impl("conv_transpose2d",
         [](const at::Tensor& input, const at::Tensor& weight,
            const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
            c10::IntArrayRef padding, c10::IntArrayRef output_padding, int64_t groups,
            c10::IntArrayRef dilation) {
           return conv_transpose2d_op(kernels, input, weight, bias, stride, padding,
                                      output_padding, groups, dilation);
         });
  m.impl("conv2d_weight",
         [](const at::Tensor& input, const at::Tensor& grad_output, c10::IntArrayRef weight_size,
            c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
            int64_t groups) {
           return conv2d_weight_op(kernels, input, grad_output, weight_size, stride, padding,
                                   dilation, groups);
         });
}

}  // namespace convkernels
