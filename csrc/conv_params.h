// ConvParams: the one description of a 2-D convolution that every kernel receives.
//
// Whatever the op (conv2d, conv_transpose2d, the weight gradient), the shapes are stated in the
// frame of the *forward* convolution, so that fprop, dgrad and wgrad read the same fields:
//
//   input   x : N x C x H x W
//   weight  w : K x (C / groups) x R x S
//   output  y : N x K x P x Q,   P = (H + 2*pad_h - dil_h*(R-1) - 1) / stride_h + 1   (same for Q)
//
// conv2d is fprop(x, w) -> y; conv_transpose2d is dgrad(y, w) -> x (its input plays y); the weight
// gradient is wgrad(x, dy) -> dw. The struct is plain data, usable on host and device; it is built
// and validated once by the make_*_params functions in conv_params.cpp.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>
#include <c10/util/ArrayRef.h>

namespace convkernels {

struct ConvParams {
  int64_t N, C, H, W;  // forward input
  int64_t K, R, S;     // filters
  int64_t P, Q;        // forward output
  int64_t stride_h, stride_w;
  int64_t pad_h, pad_w;
  int64_t dil_h, dil_w;
  int64_t groups;
  // ShuffleNet's channel shuffle fused into fprop's output write: output channel o of group g is
  // stored at channel o * groups + g instead of g * K/groups + o. Only fprop reads it.
  bool shuffle_output = false;

  C10_HOST_DEVICE int64_t c_per_group() const { return C / groups; }
  C10_HOST_DEVICE int64_t k_per_group() const { return K / groups; }

  // Each output channel k sees input channels [group(k) * C/groups, (group(k) + 1) * C/groups).
  C10_HOST_DEVICE bool is_depthwise() const { return groups == C && groups > 1; }
  // A 1x1 filter at stride 1 with no padding, output as large as the input: a matrix product per
  // image and group. (A filter trimmed of taps that read only padding can be 1x1 with a smaller
  // output: conv_ops.cpp.)
  C10_HOST_DEVICE bool is_pointwise() const {
    return R == 1 && S == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0 &&
           P == H && Q == W;
  }

  // Where fprop stores output channel o of group g, and the distance between o and o + 1.
  C10_HOST_DEVICE int64_t output_channel_step() const { return shuffle_output ? groups : 1; }
  C10_HOST_DEVICE int64_t output_channel(int64_t g, int64_t o) const {
    return shuffle_output ? o * groups + g : g * k_per_group() + o;
  }

  C10_HOST_DEVICE int64_t input_numel() const { return N * C * H * W; }
  C10_HOST_DEVICE int64_t weight_numel() const { return K * c_per_group() * R * S; }
  C10_HOST_DEVICE int64_t output_numel() const { return N * K * P * Q; }
};

// Builders: check every argument the way torch.nn.functional does (a RuntimeError that names the
// argument and its value) before any memory is touched, then fill ConvParams. Host only. Every
// size they compute fits in int64 (they reject what would not), and a stride along a dimension
// with a single output position is reduced to the smallest that gives one, so that the kernels'
// index arithmetic never sees a stride far past the input.

// conv2d(input, weight, bias, stride, padding, dilation, groups): input is x, output is y.
ConvParams make_conv2d_params(const at::Tensor& input, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                              c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups);

// conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation):
// input plays y (N x K x P x Q), weight is K x C/groups x R x S, output is x.
ConvParams make_conv_transpose2d_params(const at::Tensor& input, const at::Tensor& weight,
                                        const std::optional<at::Tensor>& bias,
                                        c10::IntArrayRef stride, c10::IntArrayRef padding,
                                        c10::IntArrayRef output_padding, int64_t groups,
                                        c10::IntArrayRef dilation);

// conv2d_weight(input, grad_output, weight_size, stride, padding, dilation, groups): the weight
// gradient of conv2d, for an x of input's shape and a dy of grad_output's shape.
ConvParams make_conv2d_weight_params(const at::Tensor& input, const at::Tensor& grad_output,
                                     c10::IntArrayRef weight_size, c10::IntArrayRef stride,
                                     c10::IntArrayRef padding, c10::IntArrayRef dilation,
                                     int64_t groups);

}  // namespace convkernels
