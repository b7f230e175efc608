// Depthwise convolution, weight gradient:
// dw[k, 0, r, s] = sum over n, p, q of dy[n, k, p, q] * x[n, k / M, p*sh - ph + r*dh, q*sw - pw + s*dw].
//
// One task per input channel c owns the M filters k of c. For each image it stages the x plane
// (depthwise_plane.h) and the dy planes, so that every (dy row, tap) pair is a unit-stride dot
// product. Rather than a dot product per pair, each ending in a horizontal reduction, every tap
// keeps one vector of per-lane partial sums for the whole task, reduced once at the end, and a
// block of taps sweeps dy rows together (TapBlock): one dy load feeds an FMA per tap, with the
// block's sums in registers. In the run of output rows whose taps all exist (the interior, for a
// padded 3x3 all rows but the first and last) a block sweeps the whole run at once; the other rows
// go one at a time with their valid taps. The summation order is fixed (image, filter, rows, lane),
// so the result does not depend on the thread count.
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

// Taps per block: their sums, the dy vector and a product fit in AVX2's 16 vector registers, and a
// 3x3 filter is one block.
constexpr int64_t kMaxBlock = 9;

// For t < B, over `rows` rows i and columns q < n:
//   sums[t][q % lanes] += dy[i * dy_pitch + q] * src[t][i * src_pitch + q]
// (the columns of the last partial vector all go to lane 0 of their tap's sums).
template <typename acc_t>
struct TapBlock {
  using V = Vec<acc_t>;
  const acc_t* dy;
  int64_t dy_pitch;
  const acc_t* const* src;
  int64_t src_pitch;
  acc_t* const* sums;

  template <int64_t B>
  void accumulate(int64_t rows, int64_t n) const {
    constexpr int64_t L = V::lanes;
    typename V::type acc[B];
    acc_t tail[B] = {};  // scalar: reading past a row would multiply whatever lies there
    for (int64_t t = 0; t < B; ++t) acc[t] = V::load(sums[t]);
    for (int64_t i = 0; i < rows; ++i) {
      const acc_t* d_row = dy + i * dy_pitch;
      int64_t q = 0;
      for (; q + L <= n; q += L) {
        const typename V::type d = V::load(d_row + q);
        for (int64_t t = 0; t < B; ++t) acc[t] += d * V::load(src[t] + i * src_pitch + q);
      }
      for (; q < n; ++q) {
        for (int64_t t = 0; t < B; ++t) tail[t] += d_row[q] * src[t][i * src_pitch + q];
      }
    }
    for (int64_t t = 0; t < B; ++t) {
      V::store(sums[t], acc[t]);
      sums[t][0] += tail[t];
    }
  }

  // accumulate<count>(rows, n) for a count in [1, B].
  template <int64_t B = kMaxBlock>
  void run(int64_t count, int64_t rows, int64_t n) const {
    if constexpr (B > 1) {
      if (count < B) return run<B - 1>(count, rows, n);
    }
    accumulate<B>(rows, n);
  }
};

template <typename scalar_t>
void wgrad_filters(const ConvParams& p, const scalar_t* x, const scalar_t* dy, scalar_t* dw) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t L = Vec<acc_t>::lanes;
  const int64_t M = p.K / p.C;
  const int64_t taps = p.R * p.S;
  const PhasedRow row(p);
  std::vector<int64_t> col_offset(p.S);
  for (int64_t s = 0; s < p.S; ++s) col_offset[s] = row.at(s * p.dil_w);
  const auto row_taps = [&](int64_t oh) {
    return tap_rows(oh, p.H, p.R, p.stride_h, p.pad_h, p.dil_h);
  };
  // The run of output rows [interior_begin, interior_end) where every filter row r is inside.
  const auto all_rows = [&](int64_t oh) {
    const Range rows = row_taps(oh);
    return rows.begin == 0 && rows.end == p.R;
  };
  int64_t interior_begin = 0;
  while (interior_begin < p.P && !all_rows(interior_begin)) ++interior_begin;
  int64_t interior_end = interior_begin;
  while (interior_end < p.P && all_rows(interior_end)) ++interior_end;

  at::parallel_for(0, p.C, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> plane(p.H * row.pitch());
    std::vector<acc_t> dy_plane(p.P * p.Q);
    std::vector<acc_t> lane_sums(M * taps * L);
    std::vector<const acc_t*> src(taps);
    std::vector<acc_t*> sums(taps);
    // Sweeps the taps of filter rows `rows` over `count` output rows from oh on, in blocks.
    const auto sweep = [&](int64_t m, int64_t oh, int64_t count, Range rows) {
      int64_t n_taps = 0;
      for (int64_t r = rows.begin; r < rows.end; ++r) {
        const int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
        for (int64_t s = 0; s < p.S; ++s, ++n_taps) {
          src[n_taps] = plane.data() + ih * row.pitch() + col_offset[s];
          sums[n_taps] = lane_sums.data() + (m * taps + r * p.S + s) * L;
        }
      }
      for (int64_t t = 0; t < n_taps; t += kMaxBlock) {
        const TapBlock<acc_t> block{dy_plane.data() + oh * p.Q, p.Q, src.data() + t,
                                    p.stride_h * row.pitch(), sums.data() + t};
        block.run(std::min(kMaxBlock, n_taps - t), count, p.Q);
      }
    };
    for (int64_t c = begin; c < end; ++c) {
      std::fill(lane_sums.begin(), lane_sums.end(), acc_t(0));
      for (int64_t n = 0; n < p.N; ++n) {
        for (int64_t h = 0; h < p.H; ++h) {
          stage_row(x + ((n * p.C + c) * p.H + h) * p.W, row, plane.data() + h * row.pitch());
        }
        for (int64_t m = 0; m < M; ++m) {
          load_row(dy + (n * p.K + c * M + m) * p.P * p.Q, p.P * p.Q, dy_plane.data());
          for (int64_t oh = 0; oh < interior_begin; ++oh) sweep(m, oh, 1, row_taps(oh));
          if (interior_end > interior_begin) {
            sweep(m, interior_begin, interior_end - interior_begin, {0, p.R});
          }
          for (int64_t oh = interior_end; oh < p.P; ++oh) sweep(m, oh, 1, row_taps(oh));
        }
      }
      for (int64_t i = 0; i < M * taps; ++i) {
        acc_t sum = 0;
        for (int64_t l = 0; l < L; ++l) sum += lane_sums[i * L + l];
        dw[c * M * taps + i] = static_cast<scalar_t>(sum);
      }
    }
  });
}

}  // namespace

void depthwise_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                     const at::Tensor& grad_weight) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "depthwise_wgrad",
                                  [&] {
                                    wgrad_filters<scalar_t>(p, input.const_data_ptr<scalar_t>(),
                                                            grad_output.const_data_ptr<scalar_t>(),
                                                            grad_weight.mutable_data_ptr<scalar_t>());
                                  });
}

}  // namespace convkernels::cpu
