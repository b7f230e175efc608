#include "conv_ops.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

namespace convkernels {
namespace {

// torch returns a channels_last result when either operand is channels_last, except for an
// empty batch, whose result is contiguous; so do we.
at::MemoryFormat result_format(const at::Tensor& input, const at::Tensor& weight) {
  const bool channels_last = input.size(0) > 0 &&
                             (input.suggest_memory_format() == at::MemoryFormat::ChannelsLast ||
                              weight.suggest_memory_format() == at::MemoryFormat::ChannelsLast);
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

at::Tensor contiguous_bias(const std::optional<at::Tensor>& bias) {
  return bias.has_value() && bias->defined() ? bias->contiguous() : at::Tensor();
}

// Kernels compute in NCHW; a channels_last result is a relayout of the NCHW one.
at::Tensor in_format(const at::Tensor& nchw, at::MemoryFormat format) {
  return format == at::MemoryFormat::Contiguous ? nchw : nchw.contiguous(format);
}

}  // namespace

at::Tensor conv2d_op(const KernelSet& kernels, const at::Tensor& input, const at::Tensor& weight,
                     const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                     c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                     bool shuffle_output) {
  ConvParams p = make_conv2d_params(input, weight, bias, stride, padding, dilation, groups);
  p.shuffle_output = shuffle_output;
  at::Tensor output = at::empty({p.N, p.K, p.P, p.Q}, input.options());
  if (p.N > 0 && p.K > 0) {
    kernels.fprop(p, input.contiguous(), weight.contiguous(), contiguous_bias(bias), output);
  }
  return in_format(output, result_format(input, weight));
}

at::Tensor conv_transpose2d_op(const KernelSet& kernels, const at::Tensor& input,
                               const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                               c10::IntArrayRef stride, c10::IntArrayRef padding,
                               c10::IntArrayRef output_padding, int64_t groups,
                               c10::IntArrayRef dilation) {
  const ConvParams p = make_conv_transpose2d_params(input, weight, bias, stride, padding,
                                                    output_padding, groups, dilation);
  at::Tensor output = at::empty({p.N, p.C, p.H, p.W}, input.options());
  if (output.numel() > 0) {
    kernels.dgrad(p, input.contiguous(), weight.contiguous(), contiguous_bias(bias), output);
  }
  return in_format(output, result_format(input, weight));
}

at::Tensor conv2d_weight_op(const KernelSet& kernels, const at::Tensor& input,
                            const at::Tensor& grad_output, c10::IntArrayRef weight_size,
                            c10::IntArrayRef stride, c10::IntArrayRef padding,
                            c10::IntArrayRef dilation, int64_t groups) {
  const ConvParams p = make_conv2d_weight_params(input, grad_output, weight_size, stride, padding,
                                                 dilation, groups);
  // An empty batch contributes nothing to the weight gradient.
  if (p.N == 0) return at::zeros(weight_size, input.options());
  at::Tensor grad_weight = at::empty(weight_size, input.options());
  if (grad_weight.numel() == 0) return grad_weight;
  kernels.wgrad(p, input.contiguous(), grad_output.contiguous(), grad_weight);
  return grad_weight;
}

}  // namespace convkernels
