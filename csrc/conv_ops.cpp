#include "conv_ops.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include "cpu/index_math.h"

namespace convkernels {
namespace {

bool is_channels_last(const at::Tensor& t) {
  return t.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
}

// torch returns a channels_last result when either operand is channels_last, except for an
// empty batch, whose result is contiguous; so do we.
at::MemoryFormat result_format(const at::Tensor& input, const at::Tensor& weight) {
  const bool channels_last =
      input.size(0) > 0 && (is_channels_last(input) || is_channels_last(weight));
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

at::Tensor contiguous_bias(const std::optional<at::Tensor>& bias) {
  return bias.has_value() && bias->defined() ? bias->contiguous() : at::Tensor();
}

// Runs `kernel` on activations in `format`, the result's: natively where the backend has a
// channels_last kernel, else the NCHW kernel between two relayouts. `run(kernel, layout)` calls a
// kernel on its activations made contiguous in `layout` (and the weight as weight_for(layout)),
// and returns its output.
template <typename Kernel, typename Run>
at::Tensor in_format(Kernel nchw, Kernel channels_last, at::MemoryFormat format, Run run) {
  if (format == at::MemoryFormat::Contiguous) return run(nchw, format);
  if (channels_last != nullptr) return run(channels_last, format);
  return run(nchw, at::MemoryFormat::Contiguous).contiguous(format);
}

// The weight as the kernels of activation `layout` take it (conv_kernels.h): the channels_last
// kernels in the memory format it comes in (a model converted to channels_last has channels_last
// weights, which they pack straight from), the NCHW kernels contiguous.
at::Tensor weight_for(const at::Tensor& weight, at::MemoryFormat layout) {
  return weight.contiguous(layout == at::MemoryFormat::ChannelsLast ? weight.suggest_memory_format()
                                                                    : at::MemoryFormat::Contiguous);
}

// Whether a filter tap that reads input position `origin` for output 0 reads inside [0, size) for
// one of `count` output positions `stride` apart.
bool reads_inside(int64_t origin, int64_t stride, int64_t count, int64_t size) {
  const cpu::Range outputs = cpu::tap_range(origin, stride, count, size);
  return outputs.begin < outputs.end;
}

// The weight with the filter rows and columns that read only padding zeroed: they contribute
// nothing, as in torch's direct kernels, rather than 0 * Inf = NaN where a weight is not finite.
at::Tensor without_padding_taps(const ConvParams& p, const at::Tensor& weight) {
  at::Tensor result = weight;
  const auto zero = [&](int dim, int64_t tap) {
    if (result.is_same(weight)) result = weight.clone();
    result.select(dim, tap).zero_();
  };
  for (int64_t r = 0; r < p.R; ++r) {
    if (!reads_inside(r * p.dil_h - p.pad_h, p.stride_h, p.P, p.H)) zero(2, r);
  }
  for (int64_t s = 0; s < p.S; ++s) {
    if (!reads_inside(s * p.dil_w - p.pad_w, p.stride_w, p.Q, p.W)) zero(3, s);
  }
  return result;
}

}  // namespace

at::Tensor conv2d_op(const KernelSet& kernels, const at::Tensor& input, const at::Tensor& weight,
                     const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                     c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                     bool shuffle_output) {
  ConvParams p = make_conv2d_params(input, weight, bias, stride, padding, dilation, groups);
  // As torch: an input without channels gives an output without channels (whatever K).
  if (p.C == 0) return at::empty({p.N, 0, p.P, p.Q}, input.options());
  p.shuffle_output = shuffle_output;
  const at::Tensor filters = without_padding_taps(p, weight);
  return in_format(kernels.fprop, kernels.fprop_channels_last, result_format(input, weight),
                   [&](KernelSet::Fprop fprop, at::MemoryFormat layout) {
                     at::Tensor output = at::empty({p.N, p.K, p.P, p.Q},
                                                   input.options().memory_format(layout));
                     if (p.N > 0) {
                       fprop(p, input.contiguous(layout), weight_for(filters, layout),
                             contiguous_bias(bias), output);
                     }
                     return output;
                   });
}

at::Tensor conv_transpose2d_op(const KernelSet& kernels, const at::Tensor& input,
                               const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                               c10::IntArrayRef stride, c10::IntArrayRef padding,
                               c10::IntArrayRef output_padding, int64_t groups,
                               c10::IntArrayRef dilation) {
  const ConvParams p = make_conv_transpose2d_params(input, weight, bias, stride, padding,
                                                    output_padding, groups, dilation);
  const at::Tensor filters = without_padding_taps(p, weight);
  return in_format(kernels.dgrad, kernels.dgrad_channels_last, result_format(input, weight),
                   [&](KernelSet::Dgrad dgrad, at::MemoryFormat layout) {
                     at::Tensor output = at::empty({p.N, p.C, p.H, p.W},
                                                   input.options().memory_format(layout));
                     if (output.numel() > 0) {
                       dgrad(p, input.contiguous(layout), weight_for(filters, layout),
                             contiguous_bias(bias), output);
                     }
                     return output;
                   });
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
  // The weight gradient is always contiguous; the activations are read in the layout they come in
  // when the backend can.
  const bool channels_last = kernels.wgrad_channels_last != nullptr &&
                             (is_channels_last(input) || is_channels_last(grad_output));
  if (channels_last) {
    kernels.wgrad_channels_last(p, input.contiguous(at::MemoryFormat::ChannelsLast),
                                grad_output.contiguous(at::MemoryFormat::ChannelsLast),
                                grad_weight);
  } else {
    kernels.wgrad(p, input.contiguous(), grad_output.contiguous(), grad_weight);
  }
  return grad_weight;
}

}  // namespace convkernels
