// Depthwise convolution, input gradient (conv_transpose2d's forward):
//   dx[n, c, h, w] = bias[c] + sum over c's M output channels k and taps (r, s) with
//                    p * sh - ph + r * dh = h and q * sw - pw + s * dw = w of w[k, r, s] * dy[n, k, p, q].
//
// Computed as a gather, so every dx element is accumulated in registers and stored once. One task
// per (image, input channel) stages the M dy planes it reads, zero-padded in width. The columns of
// a dx row split into stride_w phases w = j + t * sw; in phase j only the taps s with
// (j + pw - s * dw) divisible by sw contribute, from dy column q = t + (j + pw - s * dw) / sw, a
// unit-stride run over t. So each (row, phase) is one FilterRow over the (k, r) pairs that reach
// the row and the taps of the phase, with the filter columns regrouped by phase.
// At stride_w 2 both phases of a row are computed together and interleaved in registers
// (phase_pair_plane).
//
// At stride 1 and multiplier 1 the gradient is a forward correlation with rotated filters instead
// (depthwise_correlate.h), which runs the forward kernels' multi-row passes.
#include <algorithm>
#include <type_traits>
#include <utility>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "cpu_kernels.h"
#include "depthwise_correlate.h"
#include "depthwise_plane.h"
#include "index_math.h"

namespace convkernels::cpu {
namespace {

using namespace depthwise;

// dst[t * stride] = scalar_t(src[t]) for t < n. A compile-time Stride (nonzero) lets the
// compiler vectorize the copy.
template <int64_t Stride, typename scalar_t, typename acc_t>
void scatter(const acc_t* src, int64_t n, int64_t stride, scalar_t* dst) {
  const int64_t step = Stride ? Stride : stride;
  for (int64_t t = 0; t < n; ++t) dst[t * step] = static_cast<scalar_t>(src[t]);
}

// The lanes of a and b alternated, a[0] b[0] a[1] b[1] ...: the first half in lo, the rest in hi.
template <typename V, size_t... I>
void interleave(typename V::type a, typename V::type b, std::index_sequence<I...>,
                typename V::type& lo, typename V::type& hi) {
  constexpr size_t L = V::lanes;
  lo = __builtin_shufflevector(a, b, (I / 2 + I % 2 * L)...);
  hi = __builtin_shufflevector(a, b, (L / 2 + I / 2 + I % 2 * L)...);
}

// At stride_w 2 (the strided 3x3 layers of MobileNets) both column phases of a dx row are computed
// in one tile and interleaved in registers into contiguous stores, where one FilterRow call per
// phase and a strided scalar scatter would cost more than the one or two taps of each phase. Row h
// sums the staged dy rows in_rows[i] times filter rows filter_rows[i] (taps of phase j from
// phase_begin[j], as FilterRow's) for i in [row_begin[h], row_begin[h + 1]); the H dx rows of
// `width` columns are written at out, `width` apart.
template <typename acc_t, int64_t VecBytes>
void phase_pair_plane(int64_t H, const int64_t* row_begin, const acc_t* const* filter_rows,
                      const acc_t* const* in_rows, const int64_t* phase_begin,
                      const int64_t* col_offset, acc_t bias, int64_t width, acc_t* out) {
  using V = Vec<acc_t, VecBytes>;
  constexpr int64_t L = V::lanes;
  for_each_tile<L>(ceil_div(ceil_div(width, 2), L), [&]<int64_t U>(int64_t t0) {
    for (int64_t h = 0; h < H; ++h) {
      typename V::type acc[2][U];
      for (int64_t j = 0; j < 2; ++j) {
        for (int64_t u = 0; u < U; ++u) acc[j][u] = V::splat(bias);
      }
      for (int64_t i = row_begin[h]; i < row_begin[h + 1]; ++i) {
        const acc_t* f = filter_rows[i];
        const acc_t* in = in_rows[i] + t0;
#pragma GCC unroll 2  // a constant j keeps acc in registers
        for (int64_t j = 0; j < 2; ++j) {
          for (int64_t e = phase_begin[j]; e < phase_begin[j + 1]; ++e) {
            for (int64_t u = 0; u < U; ++u) {
              acc[j][u] += f[e] * V::load(in + col_offset[e] + u * L);
            }
          }
        }
      }
      acc_t* dst = out + h * width;
      for (int64_t u = 0; u < U; ++u) {
        const int64_t w0 = 2 * (t0 + u * L);  // the dx column of lane 0 of acc[0][u]
        typename V::type lo, hi;
        interleave<V>(acc[0][u], acc[1][u], std::make_index_sequence<L>(), lo, hi);
        if (width - w0 >= 2 * L) {
          V::store(dst + w0, lo);
          V::store(dst + w0 + L, hi);
        } else {  // the row's last columns
          store_head<acc_t, VecBytes>(dst + w0, lo, std::min(L, width - w0));
          if (width - w0 > L) store_head<acc_t, VecBytes>(dst + w0 + L, hi, width - w0 - L);
        }
      }
    }
  });
}

template <typename scalar_t, int64_t VecBytes>
void dgrad_planes(const ConvParams& p, const scalar_t* dy, const scalar_t* w,
                  const scalar_t* bias, scalar_t* dx) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t L = Vec<acc_t, VecBytes>::lanes;
  const int64_t M = p.K / p.C;
  const int64_t taps = p.R * p.S;
  const int64_t sw = p.stride_w;

  // The taps of each column phase, in phase order, and the staged dy column each one reads at
  // t = 0. dy rows are staged with `left` zeros before column 0 so that no offset is negative.
  const int64_t left = std::max<int64_t>(0, ceil_div((p.S - 1) * p.dil_w - p.pad_w, sw));
  std::vector<int64_t> phase_begin(sw + 1), tap_col, col_offset;
  for (int64_t j = 0; j < sw; ++j) {
    phase_begin[j] = static_cast<int64_t>(tap_col.size());
    for (int64_t s = 0; s < p.S; ++s) {
      const int64_t shift = j + p.pad_w - s * p.dil_w;
      if (shift % sw != 0) continue;
      tap_col.push_back(s);
      col_offset.push_back(left + shift / sw);
    }
  }
  phase_begin[sw] = static_cast<int64_t>(tap_col.size());
  const int64_t phase_width = ceil_div(p.W, sw);  // columns t of phase 0, the widest
  // Tap 0 of the last column reads dy column (W - 1 + pw) / sw, which may lie past Q (then it
  // must read zero), and a tile's spare lanes read up to a vector further.
  const int64_t pitch = left + std::max(p.Q, (p.W - 1 + p.pad_w) / sw + 1) + L;
  // At stride 2, float and double planes go straight into dx, half types through `out`.
  constexpr bool direct = std::is_same_v<scalar_t, acc_t>;

  at::parallel_for(0, p.N * p.C, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> planes(M * p.P * pitch, acc_t(0));  // margins stay zero
    std::vector<acc_t> filter(M * taps);                    // columns regrouped by phase
    std::vector<acc_t> out(sw != 2 ? ceil_div(phase_width, L) * L : direct ? 0 : p.H * p.W);
    // For each dx row h, the (k, r) pairs whose dy row p = (h + ph - r * dh) / sh exists, as the
    // staged dy rows and filter rows [row_begin[h], row_begin[h + 1]) of these lists: the buffers
    // stay put, so they are found once per task.
    std::vector<const acc_t*> all_in_rows, all_filter_rows, phase_filter_rows(M * p.R);
    std::vector<int64_t> row_begin(p.H + 1);
    for (int64_t h = 0; h < p.H; ++h) {
      row_begin[h] = static_cast<int64_t>(all_in_rows.size());
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t shift = h + p.pad_h - r * p.dil_h;
          if (shift < 0 || shift % p.stride_h != 0 || shift / p.stride_h >= p.P) continue;
          all_in_rows.push_back(planes.data() + (m * p.P + shift / p.stride_h) * pitch);
          all_filter_rows.push_back(filter.data() + (m * p.R + r) * p.S);
        }
      }
    }
    row_begin[p.H] = static_cast<int64_t>(all_in_rows.size());
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / p.C, c = nc % p.C;
      for (int64_t m = 0; m < M; ++m) {
        const int64_t k = c * M + m;
        for (int64_t oh = 0; oh < p.P; ++oh) {
          load_row(dy + ((n * p.K + k) * p.P + oh) * p.Q, p.Q,
                   planes.data() + (m * p.P + oh) * pitch + left);
        }
        for (int64_t r = 0; r < p.R; ++r) {
          for (size_t i = 0; i < tap_col.size(); ++i) {
            filter[(m * p.R + r) * p.S + i] = static_cast<acc_t>(w[(k * p.R + r) * p.S + tap_col[i]]);
          }
        }
      }
      const acc_t b = bias ? static_cast<acc_t>(bias[c]) : acc_t(0);
      if (sw == 2) {
        phase_pair_plane<acc_t, VecBytes>(
            p.H, row_begin.data(), all_filter_rows.data(), all_in_rows.data(), phase_begin.data(),
            col_offset.data(), b, p.W,
            direct ? reinterpret_cast<acc_t*>(dx + nc * p.H * p.W) : out.data());
        if constexpr (!direct) {
          scalar_t* const dst = dx + nc * p.H * p.W;
          for (int64_t i = 0; i < p.H * p.W; ++i) dst[i] = static_cast<scalar_t>(out[i]);
        }
        continue;
      }
      for (int64_t h = 0; h < p.H; ++h) {
        const int64_t rows = row_begin[h + 1] - row_begin[h];
        const acc_t* const* in_rows = all_in_rows.data() + row_begin[h];
        const acc_t* const* filter_rows = all_filter_rows.data() + row_begin[h];
        scalar_t* dst = dx + (nc * p.H + h) * p.W;
        for (int64_t j = 0; j < std::min(sw, p.W); ++j) {
          for (int64_t i = 0; i < rows; ++i) phase_filter_rows[i] = filter_rows[i] + phase_begin[j];
          const int64_t width = ceil_div(p.W - j, sw);
          const FilterRow<acc_t, VecBytes> filter_row{rows, phase_begin[j + 1] - phase_begin[j],
                                                      phase_filter_rows.data(), in_rows,
                                                      col_offset.data() + phase_begin[j], b};
          filter_row.compute(ceil_div(width, L), out.data());
          switch (sw) {
            case 1: scatter<1>(out.data(), width, 1, dst + j); break;
            default: scatter<0>(out.data(), width, sw, dst + j); break;
          }
        }
      }
    }
  });
}

}  // namespace

void depthwise_dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& grad_input) {
  if (is_correlation(p)) {
    return depthwise_correlate(as_correlation(p), grad_output, weight, /*rotate=*/true, bias,
                               grad_input);
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad_output.scalar_type(), "depthwise_dgrad", [&] {
        // The widest rows are those of column phase 0; at stride 2 a tile covers both phases,
        // in registers like fprop's passes.
        using acc_t = at::opmath_type<scalar_t>;
        const int64_t phase = ceil_div(p.W, p.stride_w);
        const bool wide =
            p.stride_w == 2 ? fills_wide_vector<acc_t>(phase) : use_wide_rows<acc_t>(phase);
        const auto planes =
            wide ? dgrad_planes<scalar_t, kWideVectorBytes> : dgrad_planes<scalar_t, 32>;
        planes(p, grad_output.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
               bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
               grad_input.mutable_data_ptr<scalar_t>());
      });
}

}  // namespace convkernels::cpu
