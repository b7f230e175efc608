// The CPU kernels. Each family (general grouped, depthwise, pointwise 1x1) has fprop, dgrad and
// wgrad with the KernelSet contract of conv_kernels.h, over NCHW activations, and the general and
// depthwise families again over channels_last (NHWC) ones (*_nhwc, KernelSet's channels_last
// trio); register_cpu.cpp picks a family per call.
#pragma once

#include "../conv_kernels.h"

namespace convkernels::cpu {

// Any stride, padding, dilation, groups and kernel shape.
void general_fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                   const at::Tensor& bias, const at::Tensor& output);
void general_dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                   const at::Tensor& bias, const at::Tensor& grad_input);
void general_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                   const at::Tensor& grad_weight);

// groups == C: one input channel per group, K / C output channels (the channel multiplier) each.
void depthwise_fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& output);
void depthwise_dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& grad_input);
void depthwise_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                     const at::Tensor& grad_weight);

// The depthwise family over channels_last activations (KernelSet's *_channels_last contract).
void depthwise_fprop_nhwc(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                          const at::Tensor& bias, const at::Tensor& output);
void depthwise_dgrad_nhwc(const ConvParams& p, const at::Tensor& grad_output,
                          const at::Tensor& weight, const at::Tensor& bias,
                          const at::Tensor& grad_input);
// Its fprop for filters wide against the map (13 columns and more, or 5 and more on maps of at
// most 14 columns) at stride and dilation 1, multiplier 1, where depthwise_nhwc_wide_applies; each
// filter rotated by 180 degrees where `rotate` (the stride-1 dgrad as a correlation,
// depthwise_correlate.h).
bool depthwise_nhwc_wide_applies(const ConvParams& p);
void depthwise_fprop_nhwc_wide(const ConvParams& p, const at::Tensor& input,
                               const at::Tensor& weight, bool rotate, const at::Tensor& bias,
                               const at::Tensor& output);
void depthwise_wgrad_nhwc(const ConvParams& p, const at::Tensor& input,
                          const at::Tensor& grad_output, const at::Tensor& grad_weight);

// 1x1 filter, stride 1, no padding (ConvParams::is_pointwise): a matrix product per image, group.
void pointwise_fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& output);
void pointwise_dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& grad_input);
void pointwise_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                     const at::Tensor& grad_weight);

// The same over channels_last (NHWC) activations (the KernelSet's channels_last trio). The general
// ones take every convolution (1x1 included) and a weight contiguous in either memory format;
// depthwise has its own.
void general_fprop_nhwc(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                        const at::Tensor& bias, const at::Tensor& output);
void general_dgrad_nhwc(const ConvParams& p, const at::Tensor& grad_output,
                        const at::Tensor& weight, const at::Tensor& bias,
                        const at::Tensor& grad_input);
// grad_weight channels_last (conv_kernels.h).
void general_wgrad_nhwc(const ConvParams& p, const at::Tensor& input,
                        const at::Tensor& grad_output, const at::Tensor& grad_weight);

// general_wgrad_nhwc's route for narrow groups (pixel_tile.h's packed groups); false where it
// does not apply.
bool packed_groups_wgrad_nhwc(const ConvParams& p, const at::Tensor& input,
                              const at::Tensor& grad_output, const at::Tensor& grad_weight);

extern const KernelSet kernels;

}  // namespace convkernels::cpu
