// General CPU data gradient (conv_transpose2d's forward): any groups, stride, padding, dilation and
// kernel shape, in gather form so that every dx element is written once and nothing is scattered.
//
// One task per (image, group, band of input rows h, h + stride_h, ...). Row h receives from the
// filter rows r whose p = (h + pad_h - r * dil_h) / stride_h is integral and inside dy: the same r
// for every row of the band, from consecutive dy rows p; the task stages those dy rows of the
// group's channels (zero-padded). Along a row, the columns w = w0 + t * stride_w of one phase
// w0 < stride_w receive from the taps s with (w0 + pad_w - s * dil_w) divisible by stride_w, from
// dy column q = (w0 + pad_w - s * dil_w) / stride_w + t: a unit-stride run over t. So each phase is
// a tap list reduced into register tiles exactly as in fprop (direct_conv_tile.h), the band's rows
// as the segments of one row where they are short.
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "cpu_kernels.h"
#include "direct_conv_tile.h"

namespace convkernels::cpu {
namespace {

using namespace direct;

// Input rows per task where a row is too short to fill a register tile.
constexpr int64_t kBandRows = 4;

// Floor division for any sign of a, b > 0.
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -ceil_div(-a, b); }

template <typename scalar_t>
void dgrad_kernel(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                  const at::Tensor& bias, const at::Tensor& grad_input) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t Cg = p.c_per_group(), Kg = p.k_per_group(), RS = p.R * p.S;
  const int64_t taps_per_c = Kg * RS;
  const scalar_t* dy = grad_output.const_data_ptr<scalar_t>();
  const scalar_t* w = weight.const_data_ptr<scalar_t>();
  const scalar_t* b = bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr;
  scalar_t* dx = grad_input.mutable_data_ptr<scalar_t>();

  // The output channels are now the c of w[k, c, r, s], reduced over k.
  const std::vector<acc_t> packed = pack_weights<acc_t>(w, p.groups, Cg, RS, Kg, Cg * RS, RS);

  // A staged dy row holds dy column q at position q + shift, where shift makes the leftmost
  // position a tap reads, (w0 + pad_w - (S-1) * dil_w) / stride_w + shift, non-negative; it is long
  // enough for the register tiles' last columns of every phase.
  const int64_t shift = ceil_div((p.S - 1) * p.dil_w, p.stride_w);
  const int64_t len = round_up(ceil_div(p.W, p.stride_w), kLanes<acc_t>) +
                      (p.stride_w - 1 + p.pad_w) / p.stride_w + shift;
  const int64_t phases = std::min(p.stride_w, p.W);

  // The rows of a band are h0 + j * stride_h, j < band_rows.
  const int64_t band_rows =
      round_up(ceil_div(p.W, p.stride_w), kLanes<acc_t>) < kRowVecs * kLanes<acc_t> ? kBandRows : 1;
  const int64_t row_phases = std::min(p.stride_h, p.H);
  const int64_t bands = ceil_div(ceil_div(p.H, p.stride_h), band_rows);

  at::parallel_for(0, p.N * p.groups * row_phases * bands, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> rows(Kg * p.R * band_rows * len);
    std::vector<Tap> taps(Kg * RS);
    std::vector<int64_t> filter_rows(p.R), dy_rows(p.R);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t h0 = task / bands % row_phases + task % bands * band_rows * p.stride_h;
      const int64_t g = task / (bands * row_phases) % p.groups;
      const int64_t n = task / (bands * row_phases * p.groups);
      if (h0 >= p.H) continue;
      const int64_t n_h = std::min(band_rows, ceil_div(p.H - h0, p.stride_h));

      // The filter rows r that reach some row of the band, and the dy row they read for h0.
      int64_t n_rows = 0;
      for (int64_t r = 0; r < p.R; ++r) {
        const int64_t num = h0 + p.pad_h - r * p.dil_h;
        const int64_t p0 = floor_div(num, p.stride_h);
        if (num % p.stride_h == 0 && p0 < p.P && p0 + n_h > 0) {
          filter_rows[n_rows] = r;
          dy_rows[n_rows++] = p0;
        }
      }
      for (int64_t k = 0; k < Kg; ++k) {
        const scalar_t* plane = dy + (n * p.K + g * Kg + k) * p.P * p.Q;
        for (int64_t i = 0; i < n_rows; ++i) {
          for (int64_t j = 0; j < n_h; ++j) {
            const int64_t q_row = dy_rows[i] + j;
            acc_t* row = rows.data() + ((k * n_rows + i) * band_rows + j) * len;
            if (q_row >= 0 && q_row < p.P) {
              stage_row(plane + q_row * p.Q, p.Q, shift, len, row);
            } else {
              std::fill(row, row + len, acc_t(0));
            }
          }
        }
      }

      for (int64_t w0 = 0; w0 < phases; ++w0) {
        int64_t n_taps = 0;
        for (int64_t s = 0; s < p.S; ++s) {
          const int64_t num = w0 + p.pad_w - s * p.dil_w;
          if (num % p.stride_w != 0) continue;
          const int64_t offset = floor_div(num, p.stride_w) + shift;
          for (int64_t k = 0; k < Kg; ++k) {
            for (int64_t i = 0; i < n_rows; ++i) {
              taps[n_taps++] = {(k * n_rows + i) * band_rows * len + offset,
                                (k * p.R + filter_rows[i]) * p.S + s};
            }
          }
        }
        const OutputRow<scalar_t> out{dx + ((n * p.C + g * Cg) * p.H + h0) * p.W + w0,
                                      p.H * p.W,
                                      p.stride_w,
                                      ceil_div(p.W - w0, p.stride_w),
                                      b ? b + g * Cg : nullptr,
                                      {n_h, len, p.stride_h * p.W}};
        reduce_row(rows.data(), packed.data() + g * Cg * taps_per_c, taps_per_c, taps.data(),
                   n_taps, Cg, out);
      }
    }
  });
}

}  // namespace

void general_dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                   const at::Tensor& bias, const at::Tensor& grad_input) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad_output.scalar_type(), "general_dgrad",
      [&] { dgrad_kernel<scalar_t>(p, grad_output, weight, bias, grad_input); });
}

}  // namespace convkernels::cpu
