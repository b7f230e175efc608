// General CPU weight gradient: any groups, stride, padding, dilation and kernel shape.
//
// dw[k, c, r, s] is a dot product over (n, p, q) of dy[n, k, p, :] with the input run that tap
// (c, r, s) reads for output row p. One task owns a few channel blocks of one group for the whole
// reduction (no atomics, a fixed summation order: deterministic). For every band of kBandRows
// output rows of every image it stages the input rows as fprop does and the dy rows of its
// channels, and accumulates lane-wise partial sums of kBlock channels x kTaps taps in registers
// over the band's rows and columns; the partial sums live in a per-task buffer between bands and
// are reduced across lanes at the end.
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "cpu_kernels.h"
#include "direct_conv_tile.h"

namespace convkernels::cpu {
namespace {

using namespace direct;

// Output rows staged at a time: the register tiles accumulate over all of them.
constexpr int64_t kBandRows = 8;
// Taps of a register tile: kBlock x kTaps accumulators use 12 of AVX2's 16 registers.
constexpr int kTaps = 3;

// The partial sums of KB channels x TB taps over a band of `rows` output rows:
// sums[tap][kk][lane] += dy[kk][i][q] * buf[tap.x + i * x_step + q] over rows i and q < len (a
// multiple of the lanes). Channel kk's dy row i is at dy + (kk * rows + i) * len; a tap's sums start
// at sums + tap.w * KB * L.
template <int KB, int TB, typename acc_t>
void accumulate_tile(const acc_t* dy, int64_t rows, int64_t len, const acc_t* buf, int64_t x_step,
                     const Tap* taps, acc_t* sums) {
  constexpr int64_t L = kLanes<acc_t>;
  acc_t acc[TB][KB][L];
  for (int t = 0; t < TB; ++t) {
    std::copy_n(sums + taps[t].w * KB * L, KB * L, &acc[t][0][0]);
  }
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t q = 0; q < len; q += L) {
      for (int t = 0; t < TB; ++t) {
        const acc_t* x = buf + taps[t].x + i * x_step + q;
        for (int kk = 0; kk < KB; ++kk) {
          const acc_t* d = dy + (kk * rows + i) * len + q;
#pragma omp simd
          for (int64_t j = 0; j < L; ++j) acc[t][kk][j] += d[j] * x[j];
        }
      }
    }
  }
  for (int t = 0; t < TB; ++t) {
    std::copy_n(&acc[t][0][0], KB * L, sums + taps[t].w * KB * L);
  }
}

template <int KB, typename acc_t>
void accumulate_block(const acc_t* dy, int64_t rows, int64_t len, const acc_t* buf,
                      int64_t x_step, const Tap* taps, int64_t n_taps, acc_t* sums) {
  int64_t i = 0;
  for (; i + kTaps <= n_taps; i += kTaps) {
    accumulate_tile<KB, kTaps>(dy, rows, len, buf, x_step, taps + i, sums);
  }
  static_assert(kTaps == 3, "the tail dispatch below covers kTaps - 1 taps");
  if (n_taps - i == 2) accumulate_tile<KB, 2>(dy, rows, len, buf, x_step, taps + i, sums);
  if (n_taps - i == 1) accumulate_tile<KB, 1>(dy, rows, len, buf, x_step, taps + i, sums);
}

template <typename scalar_t>
void wgrad_kernel(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                  const at::Tensor& grad_weight) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t L = kLanes<acc_t>;
  const int64_t Cg = p.c_per_group(), Kg = p.k_per_group(), RS = p.R * p.S;
  const int64_t taps_per_k = Cg * RS;
  const scalar_t* x = input.const_data_ptr<scalar_t>();
  const scalar_t* dy = grad_output.const_data_ptr<scalar_t>();
  scalar_t* dw = grad_weight.mutable_data_ptr<scalar_t>();

  // Input staged as in fprop. The dy rows are zero-padded to whole registers, which also zeroes
  // the products with the staged input past column Q; and so do the staged input's zero rows
  // outside the image, so every tap is listed for every output row.
  const InputBand band(p, L, kBandRows);
  const int64_t dy_len = round_up(p.Q, L);
  std::vector<Tap> taps(taps_per_k);
  band.list_taps(0, {0, p.R}, taps.data());

  // A task takes up to four channel blocks of a group: fewer when that leaves threads idle, more
  // blocks per task stage each input row fewer times.
  const int64_t full = Kg / kBlock * kBlock;
  const int64_t blocks = ceil_div(Kg, kBlock);
  const int64_t blocks_per_task = std::clamp<int64_t>(
      blocks * p.groups / (2 * at::get_num_threads()), 1, 4);
  const int64_t chunk = blocks_per_task * kBlock;
  const int64_t chunks = ceil_div(Kg, chunk);

  at::parallel_for(0, p.groups * chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> rows(band.buffer_size());
    std::vector<acc_t> dy_rows(chunk * band.rows() * dy_len);
    std::vector<acc_t> sums(chunk * taps_per_k * L);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task / chunks;
      const int64_t k0 = task % chunks * chunk;
      const int64_t k1 = std::min(Kg, k0 + chunk);
      std::fill(sums.begin(), sums.end(), acc_t(0));

      for (int64_t n = 0; n < p.N; ++n) {
        for (int64_t p0 = 0; p0 < p.P; p0 += band.rows()) {
          const int64_t n_rows = std::min(band.rows(), p.P - p0);
          band.stage(x, n, g, p0, n_rows, rows.data());
          for (int64_t k = k0; k < k1; ++k) {
            for (int64_t i = 0; i < n_rows; ++i) {
              stage_row(dy + ((n * p.K + g * Kg + k) * p.P + p0 + i) * p.Q, p.Q, 0, 1, dy_len,
                        dy_rows.data() + ((k - k0) * n_rows + i) * dy_len);
            }
          }
          for (int64_t k = k0; k < k1;) {
            const acc_t* d = dy_rows.data() + (k - k0) * n_rows * dy_len;
            acc_t* block_sums = sums.data() + (k - k0) * taps_per_k * L;
            if (k < full) {
              accumulate_block<kBlock>(d, n_rows, dy_len, rows.data(), band.row_step(),
                                       taps.data(), taps_per_k, block_sums);
              k += kBlock;
            } else {
              accumulate_block<1>(d, n_rows, dy_len, rows.data(), band.row_step(), taps.data(),
                                  taps_per_k, block_sums);
              k += 1;
            }
          }
        }
      }

      // Reduce the lanes: the tap-t sums of channel k of a block of width b starting at kb are at
      // sums + ((kb - k0) * taps_per_k + t * b + (k - kb)) * L.
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t width = k < full ? kBlock : 1;
        const int64_t kb = k / width * width;
        const acc_t* block_sums = sums.data() + ((kb - k0) * taps_per_k + (k - kb)) * L;
        scalar_t* out = dw + (g * Kg + k) * taps_per_k;
        for (int64_t t = 0; t < taps_per_k; ++t) {
          acc_t total = 0;
          for (int64_t j = 0; j < L; ++j) total += block_sums[t * width * L + j];
          out[t] = static_cast<scalar_t>(total);
        }
      }
    }
  });
}

}  // namespace

void general_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                   const at::Tensor& grad_weight) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "general_wgrad",
      [&] { wgrad_kernel<scalar_t>(p, input, grad_output, grad_weight); });
}

}  // namespace convkernels::cpu
