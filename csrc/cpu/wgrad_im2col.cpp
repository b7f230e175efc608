// The general weight gradient as the matrix product of wgrad_gemm.h over all output positions:
//   dw[g*Kg + k, c, r, s] = sum over (n, p, q) of dy[n, g*Kg + k, p, q] * x[n, g*Cg + c, h, w],
//   h = p*stride_h - pad_h + r*dil_h, w = q*stride_w - pad_w + s*dil_w,
// with A's rows the dy channels and B's row (r, s, c) the input that tap (r, s) of channel c reads
// at every output position, as im2col would gather it. The positions of all images and rows form
// one reduction, so no lanes idle on short output rows, and a filter that tiles the input without
// overlap (2x2 stride 2 of a transposed convolution) costs no more than a 1x1 filter. B's rows go
// tap by tap, so that the rows of a tile share their tap, and with it the positions where they read
// only padding: the tiles skip those.
//
// The gather works from a table per chunk of positions, built once and shared by all the channels
// of a task: for every filter tap, the segments of positions where it reads a (strided) run of the
// input or padding. Long segments are copied as such (in loops that vectorize); where the output
// rows are short, every position gets its own offset instead, one indexed load per element, or,
// where a task's channels are few (grouped convolutions), B is staged by columns: the channels of
// a tap at a position are one contiguous run of the input staged channels-last.
//
// Channels_last activations (general_wgrad_nhwc) are that layout already: B is staged by columns
// straight from x and A gathered from dy's pixels, and dw is channels_last too, its (r, s, c)
// B's row order. With few output channels per group, A and B swap (the taps' input fills the
// lanes); packed groups take their own kernel (packed_groups_wgrad.cpp).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include "cpu_kernels.h"
#include "direct_conv_tile.h"
#include "wgrad_gemm.h"
#include "wgrad_im2col.h"

namespace convkernels::cpu {
namespace {

// Staging a segment costs about as much as this many indexed loads.
constexpr int64_t kSegmentCost = 12;
// Output rows shorter than this are short (see im2col_wgrad).
constexpr int64_t kShortRow = 24;

// A run of positions [t0, t1) of a chunk where a filter tap reads input elements origin + i *
// stride_w (i = 0, 1, ...; offsets from element 0 of its channel in image 0), or zeros (origin
// -1: padding).
struct Segment {
  int64_t t0, t1, origin;
};

// The input pixel (n * H*W + h * W + w) where a segment that reads input starts; 0 for one in the
// padding.
int64_t first_pixel_of(const ConvParams& p, const Segment& seg) {
  const int64_t HW = p.H * p.W, image = p.C * HW;
  return seg.origin < 0 ? 0 : seg.origin / image * HW + seg.origin % image;
}

// The segments of every filter tap rs over positions [d0, d0 + len): segments[rs] in order.
void tap_segments(const ConvParams& p, int64_t d0, int64_t len,
                  std::vector<std::vector<Segment>>& segments) {
  const int64_t PQ = p.P * p.Q, image = p.C * p.H * p.W;
  segments.resize(p.R * p.S);
  for (int64_t r = 0; r < p.R; ++r) {
    for (int64_t s = 0; s < p.S; ++s) {
      // The output columns where tap column s reads inside the image.
      const Range cols = tap_range(s * p.dil_w - p.pad_w, p.stride_w, p.Q, p.W);
      std::vector<Segment>& out = segments[r * p.S + s];
      out.clear();
      const auto add = [&](int64_t t0, int64_t t1, int64_t origin) {
        if (t0 == t1) return;
        if (origin < 0 && !out.empty() && out.back().origin < 0) {
          out.back().t1 = t1;  // merge runs of zeros
        } else {
          out.push_back({t0, t1, origin});
        }
      };
      for (int64_t t = 0; t < len;) {  // a run of an output row at a time
        const int64_t d = d0 + t, n = d / PQ, pp = d % PQ / p.Q, q0 = d % p.Q;
        const int64_t q1 = std::min(p.Q, q0 + len - t);
        const int64_t h = pp * p.stride_h - p.pad_h + r * p.dil_h;
        const bool row_inside = h >= 0 && h < p.H;
        const int64_t lo = row_inside ? std::clamp(cols.begin, q0, q1) : q1;
        const int64_t hi = row_inside ? std::clamp(cols.end, lo, q1) : q1;
        add(t, t + lo - q0, -1);
        add(t + lo - q0, t + hi - q0,
            n * image + h * p.W + lo * p.stride_w + s * p.dil_w - p.pad_w);
        add(t + hi - q0, t + q1 - q0, -1);
        t += q1 - q0;
      }
    }
  }
}

// out[i] = src[i * stride] for i < n.
template <typename scalar_t, typename Stride, typename acc_t>
void gather(const scalar_t* __restrict src, Stride stride, int64_t n, acc_t* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<acc_t>(src[i * stride]);
}

// Stages a B row from the segments of its tap: src is element 0 of its channel in image 0.
template <typename scalar_t, typename acc_t>
void stage_segments(const scalar_t* src, const std::vector<Segment>& segments, int64_t stride,
                    acc_t* row) {
  for (const Segment& seg : segments) {
    acc_t* out = row + seg.t0;
    const int64_t n = seg.t1 - seg.t0;
    if (seg.origin < 0) {
      std::fill(out, out + n, acc_t(0));
      continue;
    }
    // Strides 1 and 2 (the common ones) as constants, in loops that vectorize.
    switch (stride) {
      case 1: gather(src + seg.origin, std::integral_constant<int64_t, 1>{}, n, out); break;
      case 2: gather(src + seg.origin, std::integral_constant<int64_t, 2>{}, n, out); break;
      default: gather(src + seg.origin, stride, n, out); break;
    }
  }
}

// The segments as one offset per position (-1: padding), for the rows too short for segments
// to pay: offsets[rs * len + t]. index_t is int32_t (twice the loads per gather instruction)
// where the input is small enough.
template <typename index_t>
void tap_offsets(const ConvParams& p, const std::vector<std::vector<Segment>>& segments,
                 int64_t len, std::vector<index_t>& offsets) {
  offsets.resize(segments.size() * len);
  for (size_t rs = 0; rs < segments.size(); ++rs) {
    index_t* out = offsets.data() + rs * len;
    for (const Segment& seg : segments[rs]) {
      for (int64_t t = seg.t0; t < seg.t1; ++t) {
        out[t] = static_cast<index_t>(seg.origin < 0 ? -1 : seg.origin + (t - seg.t0) * p.stride_w);
      }
    }
  }
}

// Stages a B row by one indexed load per position: src is element 0 of its channel in image 0.
template <typename scalar_t, typename index_t, typename acc_t>
void stage_offsets(const scalar_t* __restrict src, const index_t* __restrict offsets, int64_t len,
                   acc_t* __restrict row) {
  // The load unconditional (element 0 stands in for padding), so that this vectorizes.
#pragma omp simd
  for (int64_t t = 0; t < len; ++t) {
    const acc_t v = static_cast<acc_t>(src[std::max<index_t>(offsets[t], 0)]);
    row[t] = offsets[t] >= 0 ? v : acc_t(0);
  }
}

// Stages B's rows [b0, b0 + count) of group g (row i at dst + i * pitch) from the segments of a
// chunk of len positions: by segments, or where they are short, by one offset per position.
template <typename scalar_t, typename acc_t>
void stage_rows(const ConvParams& p, const scalar_t* x, int64_t g, int64_t b0, int64_t count,
                int64_t len, const std::vector<std::vector<Segment>>& segments, int64_t pitch,
                acc_t* dst) {
  thread_local std::vector<int32_t> offsets32;
  thread_local std::vector<int64_t> offsets64;
  const int64_t Cg = p.c_per_group(), HW = p.H * p.W;
  int64_t n_segments = 0;
  for (const auto& tap : segments) n_segments += tap.size();
  const bool by_offsets = n_segments * kSegmentCost > int64_t(segments.size()) * len;
  const bool small = p.input_numel() <= std::numeric_limits<int32_t>::max();
  if (by_offsets && small) tap_offsets(p, segments, len, offsets32);
  if (by_offsets && !small) tap_offsets(p, segments, len, offsets64);
  // Channel by channel (its input stays in cache while its taps gather from it), each filling
  // its rows of the block: b = rs * Cg + c.
  for (int64_t c = 0; c < Cg; ++c) {
    const scalar_t* src = x + (g * Cg + c) * HW;
    for (int64_t rs = b0 / Cg; rs <= (b0 + count - 1) / Cg; ++rs) {
      const int64_t i = rs * Cg + c - b0;
      if (i < 0 || i >= count) continue;
      if (!by_offsets) {
        stage_segments(src, segments[rs], p.stride_w, dst + i * pitch);
      } else if (small) {
        stage_offsets(src, offsets32.data() + rs * len, len, dst + i * pitch);
      } else {
        stage_offsets(src, offsets64.data() + rs * len, len, dst + i * pitch);
      }
    }
  }
}

// Stages B's rows [b0, b0 + count) of group g as columns (element (i, t) at dst[t * pitch + i])
// from the segments of positions [d0, d0 + len), reading the group's channels channels-last:
// channel c0 + c of input pixel e (n * H*W + h * W + w) at cl[(e - first_pixel) * cl_pitch + c].
// At every position, the channels of a tap are one contiguous run.
template <typename src_t, typename acc_t>
void gather_columns(const ConvParams& p, const src_t* cl, int64_t cl_pitch, int64_t first_pixel,
                    int64_t c0, int64_t b0, int64_t count,
                    const std::vector<std::vector<Segment>>& segments, int64_t pitch, acc_t* dst) {
  const int64_t Cg = p.c_per_group();
  for (int64_t rs = b0 / Cg; rs <= (b0 + count - 1) / Cg; ++rs) {
    // The block's channels [ca, cb) of tap rs, at columns from i0.
    const int64_t ca = std::max(b0 - rs * Cg, int64_t(0));
    const int64_t cb = std::min(b0 + count - rs * Cg, Cg);
    const int64_t i0 = rs * Cg + ca - b0, n = cb - ca;
    for (const Segment& seg : segments[rs]) {
      const int64_t pixel = first_pixel_of(p, seg);
      for (int64_t t = seg.t0; t < seg.t1; ++t) {
        acc_t* out = dst + t * pitch + i0;
        if (seg.origin < 0) {
          std::fill(out, out + n, acc_t(0));
          continue;
        }
        const src_t* in =
            cl + (pixel - first_pixel + (t - seg.t0) * p.stride_w) * cl_pitch + ca - c0;
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) out[k] = static_cast<acc_t>(in[k]);
      }
    }
  }
}

// gather_columns from NCHW input: first the input channels of the block, of the images the chunk
// touches, staged channels-last into xt.
template <typename scalar_t, typename acc_t>
void stage_columns(const ConvParams& p, const scalar_t* x, int64_t g, int64_t b0, int64_t count,
                   int64_t d0, int64_t len, const std::vector<std::vector<Segment>>& segments,
                   int64_t pitch, acc_t* dst, std::vector<acc_t>& xt) {
  const int64_t Cg = p.c_per_group(), HW = p.H * p.W, PQ = p.P * p.Q;
  // The channels of the block: all of them, unless it lies within one tap.
  const bool one_tap = b0 / Cg == (b0 + count - 1) / Cg;
  const int64_t c0 = one_tap ? b0 % Cg : 0, cw = one_tap ? count : Cg;
  const int64_t n0 = d0 / PQ, images = (d0 + len - 1) / PQ - n0 + 1;
  xt.resize(images * HW * cw);
  for (int64_t n = 0; n < images; ++n) {
    const scalar_t* planes = x + ((n0 + n) * p.C + g * Cg + c0) * HW;
    for (int64_t i = 0; i < HW; ++i) {
      acc_t* out = xt.data() + (n * HW + i) * cw;
#pragma omp simd
      for (int64_t c = 0; c < cw; ++c) out[c] = static_cast<acc_t>(planes[c * HW + i]);
    }
  }
  gather_columns(p, xt.data(), cw, n0 * HW, c0, b0, count, segments, pitch, dst);
}

// With channels_last (x and dy NHWC), A's rows are gathered from the pixels' channels and B is
// staged by columns straight from x: the channels a tap reads at a position are contiguous there.
template <wgrad::Layout layout, bool channels_last, typename scalar_t>
void wgrad_kernel(const ConvParams& p, const scalar_t* x, const scalar_t* dy, scalar_t* dw) {
  static_assert(!channels_last || layout == wgrad::Layout::kColumns);
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t PQ = p.P * p.Q, RS = p.R * p.S;
  const int64_t Kg = p.k_per_group(), Cg = p.c_per_group(), J = Cg * RS;
  // Of B's row b = rs * Cg + c in dw: c * RS + rs, or b itself in a channels_last dw.
  std::vector<int64_t> column(J);
  for (int64_t b = 0; b < J; ++b) column[b] = channels_last ? b : b % Cg * RS + b / Cg;
  // channels_last dy is A's transposed form already: a pixel's channels are contiguous.
  constexpr wgrad::Layout a_layout = channels_last ? wgrad::Layout::kColumns : wgrad::Layout::kRows;
  wgrad::weight_gradient<acc_t, layout, a_layout>(
      p.groups, Kg, J, p.N * PQ,
      [&](int64_t g, int64_t k0, int64_t count, int64_t d0, int64_t len, int64_t pitch,
          acc_t* dst) {
        if constexpr (channels_last) {
          for (int64_t t = 0; t < len; ++t) {
            const scalar_t* src = dy + (d0 + t) * p.K + g * Kg + k0;
            acc_t* column = dst + t * pitch;
            for (int64_t i = 0; i < count; ++i) column[i] = static_cast<acc_t>(src[i]);
            std::fill(column + count, column + pitch, acc_t(0));
          }
        } else {
          wgrad::stage_channels(dy + (g * Kg + k0) * PQ, p.K * PQ, PQ, count, d0, len, pitch,
                                dst);
        }
      },
      [&](int64_t g, int64_t b0, int64_t count, int64_t d0, int64_t len, int64_t pitch,
          acc_t* dst, Range* nonzero) {
        thread_local std::vector<std::vector<Segment>> segments;
        thread_local std::vector<Range> inside;
        tap_segments(p, d0, len, segments);
        // Where each tap reads inside the input: from its first to its last run of input.
        inside.assign(RS, Range{0, 0});
        for (int64_t rs = 0; rs < RS; ++rs) {
          for (const Segment& seg : segments[rs]) {
            if (seg.origin < 0) continue;
            if (inside[rs].begin == inside[rs].end) inside[rs].begin = seg.t0;
            inside[rs].end = seg.t1;
          }
        }
        for (int64_t i = 0; i < count; ++i) nonzero[i] = inside[(b0 + i) / Cg];
        if constexpr (channels_last) {
          gather_columns(p, x + g * Cg, p.C, 0, 0, b0, count, segments, pitch, dst);
        } else if constexpr (layout == wgrad::Layout::kColumns) {
          thread_local std::vector<acc_t> xt;
          stage_columns(p, x, g, b0, count, d0, len, segments, pitch, dst, xt);
        } else {
          stage_rows(p, x, g, b0, count, len, segments, pitch, dst);
        }
      },
      [&](int64_t g, int64_t k, int64_t b, acc_t v) {
        dw[(g * Kg + k) * J + column[b]] = static_cast<scalar_t>(v);
      });
}

// The channels_last product with the roles swapped, for few output channels per group (ResNeXt's
// 4 and 8): A's rows, whose count fills the lanes, are the taps' input (row rs * Cg + c gathered
// along the positions), and B is dy staged by columns.
template <typename scalar_t>
void few_outputs_wgrad_nhwc(const ConvParams& p, const scalar_t* x, const scalar_t* dy,
                            scalar_t* dw) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t RS = p.R * p.S;
  const int64_t Kg = p.k_per_group(), Cg = p.c_per_group(), J = Cg * RS;
  wgrad::weight_gradient<acc_t, wgrad::Layout::kColumns>(
      p.groups, J, Kg, p.N * p.P * p.Q,
      [&](int64_t g, int64_t a0, int64_t count, int64_t d0, int64_t len, int64_t pitch,
          acc_t* dst) {
        thread_local std::vector<std::vector<Segment>> segments;
        tap_segments(p, d0, len, segments);
        for (int64_t rs = a0 / Cg; rs <= (a0 + count - 1) / Cg; ++rs) {
          // The block's channels [ca, cb) of tap rs.
          const int64_t ca = std::max(a0 - rs * Cg, int64_t(0));
          const int64_t cb = std::min(a0 + count - rs * Cg, Cg);
          acc_t* rows = dst + (rs * Cg + ca - a0) * pitch;
          for (const Segment& seg : segments[rs]) {
            const int64_t pixel = first_pixel_of(p, seg);
            for (int64_t t = seg.t0; t < seg.t1; ++t) {
              const scalar_t* in = x + (pixel + (t - seg.t0) * p.stride_w) * p.C + g * Cg;
              for (int64_t c = ca; c < cb; ++c) {
                rows[(c - ca) * pitch + t] = seg.origin < 0 ? acc_t(0) : static_cast<acc_t>(in[c]);
              }
            }
          }
        }
      },
      [&](int64_t g, int64_t k0, int64_t count, int64_t d0, int64_t len, int64_t pitch,
          acc_t* dst, Range* nonzero) {
        for (int64_t t = 0; t < len; ++t) {
          const scalar_t* src = dy + (d0 + t) * p.K + g * Kg + k0;
          for (int64_t i = 0; i < count; ++i) dst[t * pitch + i] = static_cast<acc_t>(src[i]);
        }
        std::fill(nonzero, nonzero + count, Range{0, len});
      },
      [&](int64_t g, int64_t a, int64_t k, acc_t v) {
        dw[(g * Kg + k) * J + a] = static_cast<scalar_t>(v);
      });
}

}  // namespace

bool im2col_wgrad_pays(const ConvParams& p) {
  // The product multiplies the padding a tap reads like any input; general_wgrad skips it, which
  // wins where most reads are padding (large dilations: DeepLab's rate 36 at 64x64).
  double rows = 0, cols = 0;  // output rows and columns where the taps read inside, summed
  for (int64_t r = 0; r < p.R; ++r) {
    const Range in = tap_range(r * p.dil_h - p.pad_h, p.stride_h, p.P, p.H);
    rows += in.end - in.begin;
  }
  for (int64_t s = 0; s < p.S; ++s) {
    const Range in = tap_range(s * p.dil_w - p.pad_w, p.stride_w, p.Q, p.W);
    cols += in.end - in.begin;
  }
  const double inside = rows / (p.R * p.P) * (cols / (p.S * p.Q));
  return p.k_per_group() >= kIm2colMinOutputs && inside >= kIm2colMinInside;
}

void im2col_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                  const at::Tensor& grad_weight) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "im2col_wgrad", [&] {
        const scalar_t* x = input.const_data_ptr<scalar_t>();
        const scalar_t* dy = grad_output.const_data_ptr<scalar_t>();
        scalar_t* dw = grad_weight.mutable_data_ptr<scalar_t>();
        // Short output rows gather by columns where a task takes all the B rows of its group
        // (a few channels: their whole images, channels-last, are cheap to stage and serve every
        // tap).
        if (p.Q < kShortRow && p.c_per_group() * p.R * p.S <= wgrad::kMaxBlockB) {
          wgrad_kernel<wgrad::Layout::kColumns, false>(p, x, dy, dw);
        } else {
          wgrad_kernel<wgrad::Layout::kRows, false>(p, x, dy, dw);
        }
      });
}

void general_wgrad_nhwc(const ConvParams& p, const at::Tensor& input,
                        const at::Tensor& grad_output, const at::Tensor& grad_weight) {
  TORCH_INTERNAL_ASSERT(grad_weight.is_contiguous(at::MemoryFormat::ChannelsLast));
  if (packed_groups_wgrad_nhwc(p, input, grad_output, grad_weight)) return;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "general_wgrad_nhwc", [&] {
        const scalar_t* x = input.const_data_ptr<scalar_t>();
        const scalar_t* dy = grad_output.const_data_ptr<scalar_t>();
        scalar_t* dw = grad_weight.mutable_data_ptr<scalar_t>();
        const int64_t Kg = p.k_per_group(), J = p.c_per_group() * p.R * p.S;
        if (Kg < kIm2colMinOutputs && J > Kg) {
          few_outputs_wgrad_nhwc(p, x, dy, dw);
        } else {
          wgrad_kernel<wgrad::Layout::kColumns, true>(p, x, dy, dw);
        }
      });
}

}  // namespace convkernels::cpu
