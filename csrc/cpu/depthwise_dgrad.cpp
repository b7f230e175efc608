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
#include <algorithm>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "cpu_kernels.h"
#include "depthwise_plane.h"

namespace convkernels::cpu {
namespace {

using namespace depthwise;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// dst[t * stride] = scalar_t(src[t]) for t < n. A compile-time Stride (nonzero) lets the
// compiler vectorize the copy; at stride 2 the vectorized interleave measured slower than scalar.
template <int64_t Stride, typename scalar_t, typename acc_t>
void scatter(const acc_t* src, int64_t n, int64_t stride, scalar_t* dst) {
  const int64_t step = Stride ? Stride : stride;
  for (int64_t t = 0; t < n; ++t) dst[t * step] = static_cast<scalar_t>(src[t]);
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

  at::parallel_for(0, p.N * p.C, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> planes(M * p.P * pitch, acc_t(0));  // margins stay zero
    std::vector<acc_t> filter(M * taps);                    // columns regrouped by phase
    std::vector<acc_t> out(ceil_div(phase_width, L) * L);
    std::vector<const acc_t*> in_rows(M * p.R), filter_rows(M * p.R), phase_filter_rows(M * p.R);
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
      for (int64_t h = 0; h < p.H; ++h) {
        // The (k, r) pairs whose dy row p = (h + ph - r * dh) / sh exists.
        int64_t rows = 0;
        for (int64_t m = 0; m < M; ++m) {
          for (int64_t r = 0; r < p.R; ++r) {
            const int64_t shift = h + p.pad_h - r * p.dil_h;
            if (shift < 0 || shift % p.stride_h != 0 || shift / p.stride_h >= p.P) continue;
            in_rows[rows] = planes.data() + (m * p.P + shift / p.stride_h) * pitch;
            filter_rows[rows] = filter.data() + (m * p.R + r) * p.S;
            ++rows;
          }
        }
        scalar_t* dst = dx + (nc * p.H + h) * p.W;
        for (int64_t j = 0; j < std::min(sw, p.W); ++j) {
          for (int64_t i = 0; i < rows; ++i) phase_filter_rows[i] = filter_rows[i] + phase_begin[j];
          const int64_t width = ceil_div(p.W - j, sw);
          const FilterRow<acc_t, VecBytes> filter_row{rows, phase_begin[j + 1] - phase_begin[j],
                                                      phase_filter_rows.data(), in_rows.data(),
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
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad_output.scalar_type(), "depthwise_dgrad", [&] {
        // The widest rows are those of column phase 0.
        const auto planes = use_wide_rows<at::opmath_type<scalar_t>>(ceil_div(p.W, p.stride_w))
                                ? dgrad_planes<scalar_t, kWideVectorBytes>
                                : dgrad_planes<scalar_t, 32>;
        planes(p, grad_output.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
               bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
               grad_input.mutable_data_ptr<scalar_t>());
      });
}

}  // namespace convkernels::cpu
