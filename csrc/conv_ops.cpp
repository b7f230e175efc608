#include "conv_ops.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <c10/util/Exception.h>
#include <c10/util/accumulate.h>

#include <new>

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
// A working buffer the kernels cannot allocate (std::bad_alloc, which Python shows as a bare
// "MemoryError: std::bad_alloc") becomes torch's out-of-memory error (a RuntimeError) that names
// the convolution. The kernels stage the padding their filter taps span: taps that read only
// padding are cut off (read_taps) only while the padding left stays the same on both sides, so a
// padding and dilation of 2^20 whose first tap cannot be cut (dilation > padding) stage rows of
// 2^21 elements.
template <typename Body>
at::Tensor reporting_bad_alloc(const char* op, const ConvParams& full, Body body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    TORCH_CHECK_WITH(OutOfMemoryError, false, op,
                     ": could not allocate the kernels' working memory (std::bad_alloc) for an "
                     "input of ", full.N, " x ", full.C, " x ", full.H, " x ", full.W,
                     " and filters of ", full.K, " x ", full.c_per_group(), " x ", full.R, " x ",
                     full.S, " with stride (", full.stride_h, ", ", full.stride_w,
                     "), padding (", full.pad_h, ", ", full.pad_w, "), dilation (", full.dil_h,
                     ", ", full.dil_w, "): the padding the filter taps span is staged");
  }
}

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

// The filter taps [begin, end) along one dimension that are left once the taps before the first
// and after the last that read the input for some output position are cut off: they meet only
// padding, yet a kernel would stage the padding they span (a padding and dilation of 2^20 stage
// rows 2^21 long). The kernels take the padding as the same on both sides, at least as wide as the
// outputs reach: taps are cut at the front only while the padding that is left stays non-negative
// and still covers the reach of the last output. When no tap reads the input, one is kept
// (without_padding_taps zeroes it).
cpu::Range read_taps(int64_t kernel, int64_t dil, int64_t pad, int64_t stride, int64_t out, int64_t in) {
  const auto reads = [&](int64_t r) { return reads_inside(r * dil - pad, stride, out, in); };
  int64_t end = kernel;
  while (end > 1 && !reads(end - 1)) --end;
  int64_t begin = 0;
  // Cutting tap `begin` leaves padding pad - (begin + 1) * dil, which must cover the reach of the
  // last output: (out - 1) * stride + (end - begin - 2) * dil + 1 <= in + 2 * padding.
  while (begin + 1 < end && !reads(begin) && (begin + 1) * dil <= pad &&
         (out - 1) * stride + (end - begin - 2) * dil + 1 <= in + 2 * (pad - (begin + 1) * dil)) {
    ++begin;
  }
  return {begin, end};
}

// A convolution as the kernels run it: its parameters and weight with the filter rows and columns
// that read only padding cut off at either end (read_taps) and zeroed in between
// (without_padding_taps). The output size stays; the padding shifts by the taps cut at the front.
struct TrimmedFilter {
  ConvParams full, p;
  cpu::Range rows, cols;

  explicit TrimmedFilter(const ConvParams& full)
      : full(full),
        p(full),
        rows(read_taps(full.R, full.dil_h, full.pad_h, full.stride_h, full.P, full.H)),
        cols(read_taps(full.S, full.dil_w, full.pad_w, full.stride_w, full.Q, full.W)) {
    p.R = rows.end - rows.begin;
    p.S = cols.end - cols.begin;
    p.pad_h -= rows.begin * full.dil_h;
    p.pad_w -= cols.begin * full.dil_w;
  }

  // The part of a K x C/groups x R x S tensor (a weight or its gradient) the trimmed filter keeps.
  at::Tensor kept(const at::Tensor& full) const {
    return full.slice(2, rows.begin, rows.end).slice(3, cols.begin, cols.end);
  }
  at::Tensor weight(const at::Tensor& full) const { return without_padding_taps(p, kept(full)); }
};

}  // namespace

at::Tensor conv2d_op(const KernelSet& kernels, const at::Tensor& input, const at::Tensor& weight,
                     const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                     c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                     bool shuffle_output) {
  const ConvParams full = make_conv2d_params(input, weight, bias, stride, padding, dilation, groups);
  // As torch: an input without channels gives an output without channels (whatever K).
  if (full.C == 0) return at::empty({full.N, 0, full.P, full.Q}, input.options());
  TrimmedFilter trimmed(full);
  ConvParams& p = trimmed.p;
  p.shuffle_output = shuffle_output;
  const at::Tensor filters = trimmed.weight(weight);
  return reporting_bad_alloc("conv2d", full, [&] {
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
  });
}

at::Tensor conv_transpose2d_op(const KernelSet& kernels, const at::Tensor& input,
                               const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                               c10::IntArrayRef stride, c10::IntArrayRef padding,
                               c10::IntArrayRef output_padding, int64_t groups,
                               c10::IntArrayRef dilation) {
  const TrimmedFilter trimmed(make_conv_transpose2d_params(input, weight, bias, stride, padding,
                                                            output_padding, groups, dilation));
  const ConvParams& p = trimmed.p;
  const at::Tensor filters = trimmed.weight(weight);
  return reporting_bad_alloc("conv_transpose2d", trimmed.full, [&] {
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
  });
}

at::Tensor conv2d_weight_op(const KernelSet& kernels, const at::Tensor& input,
                            const at::Tensor& grad_output, c10::IntArrayRef weight_size,
                            c10::IntArrayRef stride, c10::IntArrayRef padding,
                            c10::IntArrayRef dilation, int64_t groups) {
  const TrimmedFilter trimmed(make_conv2d_weight_params(input, grad_output, weight_size, stride,
                                                        padding, dilation, groups));
  const ConvParams& p = trimmed.p;
  // An empty batch contributes nothing to the weight gradient.
  if (p.N == 0) return at::zeros(weight_size, input.options());
  if (c10::multiply_integers(weight_size) == 0) return at::empty(weight_size, input.options());
  // The weight gradient comes in torch's layout for the activations (channels_last for
  // channels_last ones), which are read in the layout they come in when the backend can.
  const bool channels_last = kernels.wgrad_channels_last != nullptr &&
                             (is_channels_last(input) || is_channels_last(grad_output));
  const at::TensorOptions options =
      input.options().memory_format(channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  // The taps cut off read only padding: their gradient is zero.
  const bool cut = p.R != weight_size[2] || p.S != weight_size[3];
  const at::Tensor full = cut ? at::empty(weight_size, options).zero_() : at::empty(weight_size, options);
  const at::Tensor grad_weight = cut ? at::empty(trimmed.kept(full).sizes(), options) : full;
  reporting_bad_alloc("conv2d_weight", trimmed.full, [&] {
    if (channels_last) {
      kernels.wgrad_channels_last(p, input.contiguous(at::MemoryFormat::ChannelsLast),
                                  grad_output.contiguous(at::MemoryFormat::ChannelsLast),
                                  grad_weight);
    } else {
      kernels.wgrad(p, input.contiguous(), grad_output.contiguous(), grad_weight);
    }
    return grad_weight;
  });
  if (cut) trimmed.kept(full).copy_(grad_weight);
  return full;
}

}  // namespace convkernels
