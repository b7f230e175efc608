// General CPU weight gradient: any groups, stride, padding, dilation and kernel shape.
//
// dw[k, c, r, s] is a dot product over (n, p, q) of dy[n, k, p, :] with the input run that tap
// (c, r, s) reads for output row p. One task owns a block of output channels x a block of input
// channels of one group for the whole reduction (no atomics, a fixed summation order:
// deterministic). For every band of output rows of every image it stages the input rows as fprop
// does and the dy rows of its output channels; then each register tile of kOutputs output x kTaps
// input channels takes the filter taps in turn, accumulating lane-wise partial sums over the rows
// and columns of the band where the tap reads inside the image (with a large padding or dilation,
// many taps read only zeros for most rows: they are skipped, not multiplied). The partial sums
// live in a per-task buffer between bands and are reduced across lanes at the end.
//
// Where an im2col matrix product does better (wgrad_im2col.cpp, im2col_wgrad_pays: short output
// rows, strides, a filter that tiles the input), the entry point routes the call there.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "cpu_kernels.h"
#include "direct_conv_tile.h"
#include "wgrad_im2col.h"

namespace convkernels::cpu {
namespace {

using namespace direct;

// Output elements per channel staged at a time (whole rows, at least one): the register tiles
// accumulate over all of them, so that loading and storing their partial sums is amortized.
constexpr int64_t kBandElements = 1024;
// A register tile: kOutputs output x kTaps input channels, 12 of AVX2's 16 registers or 16 of
// AVX-512's 32 (more, and GCC's register allocation starts re-loading operands).
constexpr int kOutputs = 4;
constexpr int kTaps = kVectorBytes == 64 ? 4 : 3;
// Input channels and output channel blocks of a task for a filter of 9 taps or more: a few tiles.
// A smaller filter takes sqrt(9 / taps) times more of both, for partial sums of the same size,
// as the input and dy rows it stages then serve fewer products each.
constexpr int64_t kTaskChannels = 4 * kTaps;
constexpr int64_t kTaskBlocks = 16;

// The part of a band where a filter tap reads inside the image: rows, and columns in whole
// registers (a multiple of the lanes).
struct Window {
  Range rows, cols;
};

// The partial sums of KB output x TB input channels for one filter tap over a window:
// sums[t][kk][lane] += the sum over rows i and register columns q of
//   dy[kk * dy_channel + i * dy_row + q + lane] * x[t * x_channel + i * x_row + q + lane].
template <int KB, int TB, typename acc_t>
void accumulate_tile(const acc_t* dy, int64_t dy_channel, int64_t dy_row, const acc_t* x,
                     int64_t x_channel, int64_t x_row, Window win, acc_t* sums) {
  constexpr int64_t L = kLanes<acc_t>;
  acc_t acc[TB][KB][L] = {};
  // Rows innermost (the windows have more rows than registers per row), unrolled to amortize the
  // loop's pointer updates.
  for (int64_t q = win.cols.begin; q < win.cols.end; q += L) {
#pragma GCC unroll 4
    for (int64_t i = win.rows.begin; i < win.rows.end; ++i) {
      // Unrolled in full, so that the accumulators live in registers.
#pragma GCC unroll 16
      for (int t = 0; t < TB; ++t) {
        const acc_t* xt = x + t * x_channel + i * x_row + q;
#pragma GCC unroll 16
        for (int kk = 0; kk < KB; ++kk) {
          const acc_t* d = dy + kk * dy_channel + i * dy_row + q;
#pragma omp simd
          for (int64_t j = 0; j < L; ++j) acc[t][kk][j] += d[j] * xt[j];
        }
      }
    }
  }
#pragma omp simd
  for (int64_t j = 0; j < TB * KB * L; ++j) sums[j] += (&acc[0][0][0])[j];
}

// Calls f(std::integral_constant<int, TB>) with TB = n, for 0 < n <= kTaps: the register tile's
// width in input channels as a compile-time constant.
template <int TB = kTaps, typename F>
void with_tile_width(int64_t n, F&& f) {
  if constexpr (TB > 1) {
    if (n < TB) return with_tile_width<TB - 1>(n, f);
  }
  f(std::integral_constant<int, TB>{});
}

template <typename scalar_t>
void wgrad_kernel(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                  const at::Tensor& grad_weight) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t L = kLanes<acc_t>;
  const int64_t Cg = p.c_per_group(), Kg = p.k_per_group(), RS = p.R * p.S;
  const scalar_t* x = input.const_data_ptr<scalar_t>();
  const scalar_t* dy = grad_output.const_data_ptr<scalar_t>();
  scalar_t* dw = grad_weight.mutable_data_ptr<scalar_t>();

  // Where each tap reads inside the image: output rows (for the whole image), and output columns
  // widened to whole registers; the dy rows are zero-padded to whole registers, which zeroes the
  // products with the staged input past column Q. A tap that reads no column stays empty: widened,
  // its range could cover columns of the next row.
  std::vector<Range> tap_rows(p.R), tap_cols(p.S);
  for (int64_t r = 0; r < p.R; ++r) {
    tap_rows[r] = tap_range(r * p.dil_h - p.pad_h, p.stride_h, p.P, p.H);
  }
  for (int64_t s = 0; s < p.S; ++s) {
    const Range q = tap_range(s * p.dil_w - p.pad_w, p.stride_w, p.Q, p.W);
    tap_cols[s] = q.begin < q.end ? Range{q.begin / L * L, round_up(q.end, L)} : Range{0, 0};
  }
  const int64_t dy_len = round_up(p.Q, L);

  // A task takes c_chunk input channels and up to kTaskBlocks * scale output channel blocks: fewer
  // when that leaves threads idle, more blocks per task stage each input row fewer times.
  const int64_t full = Kg / kOutputs * kOutputs;
  const int64_t blocks = ceil_div(Kg, kOutputs);
  const double scale = std::sqrt(std::max(1.0, 9.0 / RS));
  const int64_t c_chunk =
      std::min(Cg, round_up(static_cast<int64_t>(kTaskChannels * scale), kTaps));
  const int64_t c_chunks = ceil_div(Cg, c_chunk);
  const int64_t blocks_per_task =
      std::clamp<int64_t>(blocks * p.groups * c_chunks / (2 * at::get_num_threads()), 1,
                          static_cast<int64_t>(kTaskBlocks * scale));
  const int64_t k_chunk = blocks_per_task * kOutputs;
  const int64_t k_chunks = ceil_div(Kg, k_chunk);
  const InputBand band(p, L, ceil_div(kBandElements, dy_len), c_chunk);

  at::parallel_for(0, p.groups * k_chunks * c_chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> rows(band.buffer_size());
    std::vector<acc_t> dy_rows(k_chunk * band.rows() * dy_len);
    std::vector<acc_t> sums(k_chunk * c_chunk * RS * L);
    std::vector<Window> windows(RS);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task / (k_chunks * c_chunks);
      const int64_t k0 = task / c_chunks % k_chunks * k_chunk;
      const int64_t k1 = std::min(Kg, k0 + k_chunk);
      const int64_t c0 = task % c_chunks * c_chunk;
      const int64_t cn = std::min(Cg - c0, c_chunk);
      // The sums of the output channel block of width b at kb: at (kb - k0) * cn * RS * L, and
      // within it tap (c, rs) of channel kb + kk at ((rs * cn + c) * b + kk) * L.
      std::fill(sums.begin(), sums.end(), acc_t(0));

      for (int64_t n = 0; n < p.N; ++n) {
        for (int64_t p0 = 0; p0 < p.P; p0 += band.rows()) {
          const int64_t n_rows = std::min(band.rows(), p.P - p0);
          band.stage(x, n, g * Cg + c0, cn, p0, n_rows, rows.data());
          for (int64_t k = k0; k < k1; ++k) {
            for (int64_t i = 0; i < n_rows; ++i) {
              stage_row(dy + ((n * p.K + g * Kg + k) * p.P + p0 + i) * p.Q, p.Q, 0, dy_len,
                        dy_rows.data() + ((k - k0) * n_rows + i) * dy_len);
            }
          }
          for (int64_t r = 0; r < p.R; ++r) {
            for (int64_t s = 0; s < p.S; ++s) {
              windows[r * p.S + s] = {{std::max(tap_rows[r].begin, p0) - p0,
                                       std::min(tap_rows[r].end, p0 + n_rows) - p0},
                                      tap_cols[s]};
            }
          }
          // A tile of input channels and a block of output channels take all the filter taps in
          // turn, while their staged rows stay in cache.
          for (int64_t c = 0; c < cn; c += kTaps) {
            with_tile_width(std::min<int64_t>(kTaps, cn - c), [&](auto tile_width) {
              constexpr int TB = decltype(tile_width)::value;
              for (int64_t k = k0; k < k1;) {
                const int64_t width = k < full ? kOutputs : 1;
                const acc_t* d = dy_rows.data() + (k - k0) * n_rows * dy_len;
                acc_t* block_sums = sums.data() + (k - k0) * cn * RS * L;
                for (int64_t rs = 0; rs < RS; ++rs) {
                  const Window& win = windows[rs];
                  if (win.rows.begin >= win.rows.end || win.cols.begin >= win.cols.end) continue;
                  const acc_t* xs = rows.data() + band.offset(c, 0, rs / p.S, rs % p.S);
                  acc_t* tile_sums = block_sums + (rs * cn + c) * width * L;
                  if (width == kOutputs) {
                    accumulate_tile<kOutputs, TB>(d, n_rows * dy_len, dy_len, xs,
                                                  band.channel_step(), band.row_step(), win,
                                                  tile_sums);
                  } else {
                    accumulate_tile<1, TB>(d, n_rows * dy_len, dy_len, xs, band.channel_step(),
                                           band.row_step(), win, tile_sums);
                  }
                }
                k += width;
              }
            });
          }
        }
      }

      // Reduce the lanes of all the sums at once, pairwise in place (independent adds, which
      // vectorize); the total lands in lane 0.
      const int64_t n_sums = (k1 - k0) * cn * RS;
#pragma GCC unroll 8
      for (int64_t half = L / 2; half > 0; half /= 2) {
        for (int64_t m = 0; m < n_sums; ++m) {
#pragma omp simd
          for (int64_t j = 0; j < half; ++j) sums[m * L + j] += sums[m * L + j + half];
        }
      }
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t width = k < full ? kOutputs : 1;
        const int64_t kb = k / width * width;
        const acc_t* block_sums = sums.data() + ((kb - k0) * cn * RS + (k - kb)) * L;
        scalar_t* out = dw + ((g * Kg + k) * Cg + c0) * RS;
        for (int64_t c = 0; c < cn; ++c) {
          for (int64_t rs = 0; rs < RS; ++rs) {
            out[c * RS + rs] = static_cast<scalar_t>(block_sums[(rs * cn + c) * width * L]);
          }
        }
      }
    }
  });
}

}  // namespace

void general_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                   const at::Tensor& grad_weight) {
  if (im2col_wgrad_pays(p)) return im2col_wgrad(p, input, grad_output, grad_weight);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "general_wgrad",
      [&] { wgrad_kernel<scalar_t>(p, input, grad_output, grad_weight); });
}

}  // namespace convkernels::cpu
