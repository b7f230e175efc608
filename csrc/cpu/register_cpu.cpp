// The CPU backend: picks a kernel family per call and registers the kernel ops for CPU tensors.
#include <algorithm>

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../conv_ops.h"
#include "cpu_kernels.h"
#include "depthwise_correlate.h"

namespace convkernels::cpu {
namespace {

// Runs an fprop or dgrad (the same signature) whose kernel takes `format` on operands in the
// other memory format, into an output in theirs.
void through_layout(KernelSet::Fprop kernel, at::MemoryFormat format, const ConvParams& p,
                    const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                    const at::Tensor& output) {
  at::Tensor result = at::empty(output.sizes(), output.options().memory_format(format));
  kernel(p, input.contiguous(format), weight, bias, result);
  output.copy_(result);
}

// Grouped convolutions (not depthwise) with short output rows (ResNeXt's last two stages) run
// faster through the NHWC kernels, whose tiles are pixels by output channels, than through the
// NCHW ones, whose vectors run along an output row (7 columns of 16 lanes), even after the two
// relayouts: 32 groups of 1024 channels at 7x7, forward 0.54 -> 0.30 ms, grad_input 0.44 -> 0.33.
// Not at 28 columns and more, where the relayouts cost more than the NHWC kernels save, nor for
// the input gradient of a strided convolution, whose relayout of dx (stride^2 times dy's pixels)
// does (512 channels at 28x28, stride 2: 0.70 -> 0.94 ms).
bool nchw_through_channels_last(const ConvParams& p) {
  return p.groups > 1 && !p.is_depthwise() && p.Q <= 14;
}

void fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
           const at::Tensor& bias, const at::Tensor& output) {
  if (p.is_pointwise()) return pointwise_fprop(p, input, weight, bias, output);
  if (p.is_depthwise()) return depthwise_fprop(p, input, weight, bias, output);
  if (nchw_through_channels_last(p)) {
    return through_layout(general_fprop_nhwc, at::MemoryFormat::ChannelsLast, p, input, weight,
                          bias, output);
  }
  general_fprop(p, input, weight, bias, output);
}

void dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
           const at::Tensor& bias, const at::Tensor& grad_input) {
  if (p.is_pointwise()) return pointwise_dgrad(p, grad_output, weight, bias, grad_input);
  if (p.is_depthwise()) return depthwise_dgrad(p, grad_output, weight, bias, grad_input);
  if (nchw_through_channels_last(p) && p.stride_h == 1 && p.stride_w == 1) {
    return through_layout(general_dgrad_nhwc, at::MemoryFormat::ChannelsLast, p, grad_output,
                          weight, bias, grad_input);
  }
  general_dgrad(p, grad_output, weight, bias, grad_input);
}

void wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
           const at::Tensor& grad_weight) {
  if (p.is_pointwise()) return pointwise_wgrad(p, input, grad_output, grad_weight);
  if (p.is_depthwise()) return depthwise_wgrad(p, input, grad_output, grad_weight);
  general_wgrad(p, input, grad_output, grad_weight);
}

// Depthwise filters of 13x13 and more (RepLKNet's) that depthwise_fprop_nhwc_wide does not take (at
// a stride or dilation, with a multiplier, or under 13 columns), and the weight gradient of all of
// them, go through the NCHW kernels, whose whole-plane passes beat the NHWC gather there by more
// than the two relayouts cost (measured at 31x31 on 56x56 before the wide kernel took it: forward
// 9.0 against 14.2 ms, grad_input 0.38 against 0.69 of torch's time).
bool channels_last_through_nchw(const ConvParams& p) {
  return p.is_depthwise() && std::max(p.R, p.S) >= 13;
}

void fprop_channels_last(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                         const at::Tensor& bias, const at::Tensor& output) {
  // Only the general kernels read a channels_last weight (conv_kernels.h); a depthwise one is
  // already contiguous (its second dimension has size 1).
  if (depthwise_nhwc_wide_applies(p)) {
    return depthwise_fprop_nhwc_wide(p, input, weight.contiguous(), /*rotate=*/false, bias, output);
  }
  if (channels_last_through_nchw(p)) {
    return through_layout(fprop, at::MemoryFormat::Contiguous, p, input, weight.contiguous(), bias,
                          output);
  }
  if (p.is_depthwise()) return depthwise_fprop_nhwc(p, input, weight.contiguous(), bias, output);
  general_fprop_nhwc(p, input, weight, bias, output);
}

void dgrad_channels_last(const ConvParams& p, const at::Tensor& grad_output,
                         const at::Tensor& weight, const at::Tensor& bias,
                         const at::Tensor& grad_input) {
  if (is_correlation(p) && depthwise_nhwc_wide_applies(as_correlation(p))) {
    return depthwise_fprop_nhwc_wide(as_correlation(p), grad_output, weight.contiguous(),
                                     /*rotate=*/true, bias, grad_input);
  }
  if (channels_last_through_nchw(p)) {
    return through_layout(dgrad, at::MemoryFormat::Contiguous, p, grad_output, weight.contiguous(),
                          bias, grad_input);
  }
  if (p.is_depthwise()) {
    return depthwise_dgrad_nhwc(p, grad_output, weight.contiguous(), bias, grad_input);
  }
  general_dgrad_nhwc(p, grad_output, weight, bias, grad_input);
}

void wgrad_channels_last(const ConvParams& p, const at::Tensor& input,
                         const at::Tensor& grad_output, const at::Tensor& grad_weight) {
  if (channels_last_through_nchw(p)) {
    return wgrad(p, input.contiguous(), grad_output.contiguous(), grad_weight);
  }
  if (p.is_depthwise()) return depthwise_wgrad_nhwc(p, input, grad_output, grad_weight);
  general_wgrad_nhwc(p, input, grad_output, grad_weight);
}

}  // namespace

const KernelSet kernels{fprop, dgrad, wgrad,
                        fprop_channels_last, dgrad_channels_last, wgrad_channels_last};

}  // namespace convkernels::cpu

TORCH_LIBRARY_IMPL(convkernels, CPU, m) {
  convkernels::register_kernel_ops<convkernels::cpu::kernels>(m);
}
