// Depthwise convolution over channels_last activations, forward and input gradient, as gathers
// vectorised over channels (depthwise_nhwc_gather.h).
//
// fprop: y[n, oh, ow, j] = bias + sum over filter rows r and columns s in range of
//   w[k(j), r, s] * x[n, oh*sh - ph + r*dh, ow*sw - pw + s*dw, c(j)]
// where j is the storage channel of output k(j) (p.output_channel), reading input channel c(j).
// At multiplier M > 1 the input is first expanded to K channels in storage order, x_rep[.., j] =
// x[.., c(j)], so that every output channel reads the same lane of its own input channel.
//
// dgrad (conv_transpose2d's forward): dx[n, h, w, c] = bias[c] + sum over m < M and the taps
// (r, s) with h = p*sh - ph + r*dh, w = q*sw - pw + s*dw of
// w[c*M + m, r, s] * dy[n, p, q, c*M + m].
// Row h gathers the (m, r) pairs whose dy row p exists; the columns split into stride_w phases
// w = j + t*sw, in which the taps s with (j + pw - s*dw) divisible by sw read dy column
// q = t + (j + pw - s*dw) / sw. At M > 1, dy is first regrouped as M blocks of C channels.
//
// Half types run in float (converted on the way in and out), as their opmath type.
#include <cmath>
#include <utility>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/flip.h>

#include "cpu_kernels.h"
#include "depthwise_correlate.h"
#include "depthwise_nhwc_gather.h"
#include "depthwise_nhwc_io.h"

namespace convkernels::cpu {
namespace {

using namespace nhwc;

template <typename T>
void fprop_gather(const ConvParams& p, const at::Tensor& x, const at::Tensor& w,
                  const at::Tensor& bias, const at::Tensor& y) {
  const int64_t M = p.K / p.C, taps = p.R * p.S;
  const int64_t pitch = filter_pitch<T>(p.K);
  // Filters as R x S x pitch, bias as pitch, both in storage order.
  std::vector<T> filters(taps * pitch, T(0)), b(pitch, T(0));
  const T* w_data = w.const_data_ptr<T>();
  for (int64_t c = 0; c < p.C; ++c) {
    for (int64_t m = 0; m < M; ++m) {
      const int64_t k = c * M + m, j = p.output_channel(c, m);
      for (int64_t t = 0; t < taps; ++t) filters[t * pitch + j] = w_data[k * taps + t];
      if (bias.defined()) b[j] = bias.const_data_ptr<T>()[k];
    }
  }
  std::vector<std::pair<int64_t, int64_t>> taps_at;  // (input column of pixel 0, filter column)
  for (int64_t s = 0; s < p.S; ++s) taps_at.emplace_back(s * p.dil_w - p.pad_w, s);
  const std::vector<Phase> phases{Phase(0, p.Q, 1, p.stride_w, taps_at, p.W, p.K, pitch)};
  RowPairs rows;
  rows.end_row();
  for (int64_t oh = 0; oh < p.P; ++oh) {
    const Range r = tap_rows(oh, p.H, p.R, p.stride_h, p.pad_h, p.dil_h);
    for (int64_t i = r.begin; i < r.end; ++i) {
      rows.add(oh * p.stride_h - p.pad_h + i * p.dil_h, 0, i * p.S * pitch);
    }
    rows.end_row();
  }
  gather(Gather<T>{p.N, p.H, p.W, p.K, p.P, p.Q, p.K, pitch, x.const_data_ptr<T>(),
                   filters.data(), b.data(), y.mutable_data_ptr<T>(), &phases, &rows});
}

template <typename T>
void dgrad_gather(const ConvParams& p, const at::Tensor& dy, const at::Tensor& w,
                  const at::Tensor& bias, const at::Tensor& dx) {
  const int64_t M = p.K / p.C, taps = p.R * p.S;
  const int64_t pitch = filter_pitch<T>(p.C);
  // Filters as M x R x S x pitch (filter c * M + m at lane c of block m), bias as pitch.
  std::vector<T> filters(M * taps * pitch, T(0)), b(pitch, T(0));
  const T* w_data = w.const_data_ptr<T>();
  for (int64_t c = 0; c < p.C; ++c) {
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t t = 0; t < taps; ++t) {
        filters[(m * taps + t) * pitch + c] = w_data[(c * M + m) * taps + t];
      }
    }
    if (bias.defined()) b[c] = bias.const_data_ptr<T>()[c];
  }
  std::vector<Phase> phases;
  for (int64_t j = 0; j < std::min(p.stride_w, p.W); ++j) {
    std::vector<std::pair<int64_t, int64_t>> taps_at;  // (dy column of pixel 0, filter column)
    for (int64_t s = 0; s < p.S; ++s) {
      const int64_t shift = j + p.pad_w - s * p.dil_w;
      if (shift % p.stride_w == 0) taps_at.emplace_back(shift / p.stride_w, s);
    }
    phases.emplace_back(j, ceil_div(p.W - j, p.stride_w), p.stride_w, 1, taps_at, p.Q, p.K,
                        pitch);
  }
  RowPairs rows;
  rows.end_row();
  for (int64_t h = 0; h < p.H; ++h) {
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t r = p.R - 1; r >= 0; --r) {  // dy rows in increasing order (for row2)
        const int64_t shift = h + p.pad_h - r * p.dil_h;
        if (shift < 0 || shift % p.stride_h != 0 || shift / p.stride_h >= p.P) continue;
        rows.add(shift / p.stride_h, m * p.C, (m * p.R + r) * p.S * pitch);
      }
    }
    rows.end_row();
  }
  gather(Gather<T>{p.N, p.P, p.Q, p.K, p.H, p.W, p.C, pitch, dy.const_data_ptr<T>(),
                   filters.data(), b.data(), dx.mutable_data_ptr<T>(), &phases, &rows});
}

// Whether the filters hold no Inf or NaN.
inline bool all_finite(const at::Tensor& w) {
  const at::Tensor c = w.contiguous();
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "all_finite", [&] {
    const scalar_t* data = c.const_data_ptr<scalar_t>();
    for (int64_t i = 0; i < c.numel(); ++i) finite = finite && std::isfinite(data[i]);
  });
  return finite;
}

// Whether fprop should run on a zero-padded copy of the input: where the padding leaves few
// pixels whose taps are all in range (a 7x7 filter on 7x7 maps), which the border code computes
// tap by tap, while a padded input makes every pixel an inner one (its zero taps cost less).
inline bool pads_input(const ConvParams& p) {
  if (p.pad_h == 0 && p.pad_w == 0) return false;
  return 4 * p.pad_w >= p.Q || 4 * p.pad_h >= p.P;
}

}  // namespace

void depthwise_fprop_nhwc(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                          const at::Tensor& bias, const at::Tensor& output) {
  const int64_t M = p.K / p.C;
  at::Tensor x = in_opmath(input);
  if (M > 1) {  // x_rep[.., j] = x[.., c(j)]: M copies of each channel, or of the whole pixel
    const at::Tensor pixels = x.permute({0, 2, 3, 1});  // N x H x W x C, contiguous
    x = (p.shuffle_output ? pixels.unsqueeze(3).expand({p.N, p.H, p.W, M, p.C})
                          : pixels.unsqueeze(4).expand({p.N, p.H, p.W, p.C, M}))
            .contiguous();
  }
  const at::Tensor y = out_opmath(output, at::MemoryFormat::ChannelsLast);
  const at::Tensor w = in_opmath(weight);
  ConvParams q = p;
  if (pads_input(p) && all_finite(w)) {
    // Zero-padded input, all pixels inner: a zero only meets finite filters (0 * Inf is NaN).
    const at::Tensor pixels = M > 1 ? x.view({p.N, p.H, p.W, p.K}) : x.permute({0, 2, 3, 1});
    const int64_t H = p.H + 2 * p.pad_h, W = p.W + 2 * p.pad_w;
    const at::Tensor padded = at::empty({p.N, H, W, p.K}, pixels.options());
    padded.narrow(1, 0, p.pad_h).zero_();
    padded.narrow(1, p.pad_h + p.H, p.pad_h).zero_();
    const at::Tensor rows = padded.narrow(1, p.pad_h, p.H);
    rows.narrow(2, 0, p.pad_w).zero_();
    rows.narrow(2, p.pad_w + p.W, p.pad_w).zero_();
    rows.narrow(2, p.pad_w, p.W).copy_(pixels);
    x = padded;
    q.H += 2 * p.pad_h;
    q.W += 2 * p.pad_w;
    q.pad_h = q.pad_w = 0;
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "depthwise_fprop_nhwc", [&] {
    fprop_gather<scalar_t>(q, x, w, in_opmath(bias), y);
  });
  if (!y.is_same(output)) output.copy_(y);
}

void depthwise_dgrad_nhwc(const ConvParams& p, const at::Tensor& grad_output,
                          const at::Tensor& weight, const at::Tensor& bias,
                          const at::Tensor& grad_input) {
  const int64_t M = p.K / p.C;
  if (is_correlation(p)) {
    // Take fprop over dy with the flipped filters where fprop pads its input (the padding is then
    // zeros read for finite filters), and where its output is dx exactly (no output_padding).
    const ConvParams f = as_correlation(p);
    const bool exact = f.P == f.H + 2 * f.pad_h - (p.R - 1) * p.dil_h &&
                       f.Q == f.W + 2 * f.pad_w - (p.S - 1) * p.dil_w;
    if (exact && pads_input(f)) {
      return depthwise_fprop_nhwc(f, grad_output, weight.flip({2, 3}), bias, grad_input);
    }
  }
  at::Tensor dy = in_opmath(grad_output);
  if (M > 1) {  // dy_perm[.., m * C + c] = dy[.., c * M + m]
    dy = dy.permute({0, 2, 3, 1}).reshape({p.N, p.P, p.Q, p.C, M}).transpose(3, 4).contiguous();
  }
  const at::Tensor dx = out_opmath(grad_input, at::MemoryFormat::ChannelsLast);
  AT_DISPATCH_FLOATING_TYPES(dy.scalar_type(), "depthwise_dgrad_nhwc", [&] {
    dgrad_gather<scalar_t>(p, dy, in_opmath(weight), in_opmath(bias), dx);
  });
  if (!dx.is_same(grad_input)) grad_input.copy_(dx);
}

}  // namespace convkernels::cpu
