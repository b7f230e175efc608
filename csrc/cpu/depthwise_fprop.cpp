// Depthwise convolution, forward: y[n, k] = bias[k] + x[n, k / M] (*) w[k], M = K / C.
// The same correlation, with rotated filters, serves the stride-1 dgrad (depthwise_correlate.h).
//
// One task per (image, input channel): it stages the input plane once (depthwise_plane.h) and
// computes the M output planes that read it. A plane is computed tile by tile of up to four
// vectors of columns, each tile in passes of several output rows whose accumulators stay in
// registers: each vector loaded from a staged input row at tap s feeds every output row of the pass
// that reads it (a broadcast weight times the vector). Square 3x3, 5x5 and 7x7 filters take passes
// with compile-time taps (fast_pass); other filters a table of filter rows (block_pass).
#include <algorithm>
#include <type_traits>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "cpu_kernels.h"
#include "depthwise_correlate.h"
#include "depthwise_plane.h"

namespace convkernels::cpu {
namespace {

using namespace depthwise;

// Calls pass.template operator()<Rows>(oh) for passes of Rows output rows from row oh that cover
// rows [0, P), for a tile of U vectors: 16 / U rows (at most 8), so that 16 accumulators, the
// loaded vectors and the weights fit AVX-512's 32 registers. The last pass ends at row P,
// overlapping the one before (its rows are recomputed, with the same result), so that no
// narrower pass is needed.
template <int64_t U, typename Pass>
void for_each_pass(int64_t P, Pass&& pass) {
  const auto run = [&]<int64_t Rows>() {
    for (int64_t oh = 0;; oh += Rows) {
      oh = std::min(oh, P - Rows);
      pass.template operator()<Rows>(oh);
      if (oh + Rows >= P) break;
    }
  };
  constexpr int64_t kRows = std::min<int64_t>(8, 16 / U);
  if (P >= kRows) {
    run.template operator()<kRows>();
  } else if (kRows == 8 && P == 7) {  // 7x7 maps, the last stage of 224-pixel networks
    run.template operator()<7>();
  } else if (P >= 4) {
    run.template operator()<4>();
  } else {
    run.template operator()<1>();
  }
}

// The tail of a tile of U vectors from column q0 in a row of `width` columns: the lanes of its
// last vector that are stored.
template <int64_t L, int64_t U>
int64_t tile_tail(int64_t q0, int64_t width) {
  return std::min(L, width - q0 - (U - 1) * L);
}

// Stores acc[j][u] at out + j * out_pitch + u * lanes, of the last vector the first `tail` lanes.
template <typename acc_t, int64_t VecBytes, int64_t Rows, int64_t U>
void store_pass(const typename Vec<acc_t, VecBytes>::type (&acc)[Rows][U], int64_t out_pitch,
                int64_t tail, acc_t* out) {
  using V = Vec<acc_t, VecBytes>;
  for (int64_t j = 0; j < Rows; ++j) {
    for (int64_t u = 0; u + 1 < U; ++u) V::store(out + j * out_pitch + u * V::lanes, acc[j][u]);
    store_head<acc_t, VecBytes>(out + j * out_pitch + (U - 1) * V::lanes, acc[j][U - 1], tail);
  }
}

// Square 3x3, 5x5 and 7x7 filters at row dilation 1 and equal stride 1 or 2 (the depthwise layers
// of MobileNets and ConvNeXts) take passes with compile-time taps. Their plane is staged with its
// top and bottom padding rows, so output row oh reads padded rows oh * Stride + r and no tap is
// skipped. Column dilation and stride live in col_offset.
int64_t fast_filter_size(const ConvParams& p) {
  const bool fast = p.R == p.S && (p.R == 3 || p.R == 5 || p.R == 7) && p.dil_h == 1 &&
                    p.stride_h == p.stride_w && (p.stride_h == 1 || p.stride_h == 2);
  return fast ? p.R : 0;
}

// Output rows j < Rows, vectors u < U, from padded input row `in` on (store_pass). Filter column s
// at a time: its K weights are broadcast once and stay in registers while the column sweeps the
// input rows. Not inlined: in the caller's loop over passes, the compiler would hoist all K * K
// broadcasts out of the loop and spill them, and the accumulators with them.
template <typename acc_t, int64_t VecBytes, int64_t K, int64_t Stride, int64_t Rows, int64_t U>
__attribute__((noinline)) void fast_pass(const acc_t* in, int64_t pitch, const int64_t* col_offset,
                                         const acc_t* f, acc_t bias, int64_t out_pitch,
                                         int64_t tail, acc_t* out) {
  using V = Vec<acc_t, VecBytes>;
  typename V::type acc[Rows][U];
  for (int64_t j = 0; j < Rows; ++j) {
    for (int64_t u = 0; u < U; ++u) acc[j][u] = V::splat(bias);
  }
  // Fully unrolled, so that every r below is a constant and acc stays in registers.
#pragma GCC unroll 8
  for (int64_t s = 0; s < K; ++s) {
    typename V::type weight[K];
    for (int64_t r = 0; r < K; ++r) weight[r] = V::splat(f[r * K + s]);
#pragma GCC unroll 32
    for (int64_t i = 0; i < (Rows - 1) * Stride + K; ++i) {
      const acc_t* src = in + i * pitch + col_offset[s];
      typename V::type v[U];
      for (int64_t u = 0; u < U; ++u) v[u] = V::load(src + u * V::lanes);
#pragma GCC unroll 8
      for (int64_t j = 0; j < Rows; ++j) {
        const int64_t r = i - j * Stride;  // the filter row joining input row i to output row j
        if (r < 0 || r >= K) continue;
        for (int64_t u = 0; u < U; ++u) acc[j][u] += weight[r] * v[u];
      }
    }
  }
  store_pass<acc_t, VecBytes>(acc, out_pitch, tail, out);
}

// All P output rows of one filter over the padded plane (top row at `plane`) into rows of `width`
// columns, out_pitch apart.
template <typename acc_t, int64_t VecBytes, int64_t K, int64_t Stride>
void fast_plane(const ConvParams& p, const acc_t* plane, int64_t pitch, const int64_t* col_offset,
                const acc_t* f, acc_t bias, int64_t vecs, int64_t width, int64_t out_pitch,
                acc_t* out) {
  constexpr int64_t L = Vec<acc_t, VecBytes>::lanes;
  for_each_tile<L>(vecs, [&]<int64_t U>(int64_t q0) {
    const int64_t tail = tile_tail<L, U>(q0, width);
    for_each_pass<U>(p.P, [&]<int64_t Rows>(int64_t oh) {
      fast_pass<acc_t, VecBytes, K, Stride, Rows, U>(plane + oh * Stride * pitch + q0, pitch,
                                                     col_offset, f, bias, out_pitch, tail,
                                                     out + oh * out_pitch + q0);
    });
  });
}

// fast_plane for the runtime filter size and stride.
template <typename acc_t, int64_t VecBytes>
void fast_plane_any(int64_t size, const ConvParams& p, const acc_t* plane, int64_t pitch,
                    const int64_t* col_offset, const acc_t* f, acc_t bias, int64_t vecs,
                    int64_t width, int64_t out_pitch, acc_t* out) {
  const auto run = [&]<int64_t K>() {
    (p.stride_h == 1 ? fast_plane<acc_t, VecBytes, K, 1> : fast_plane<acc_t, VecBytes, K, 2>)(
        p, plane, pitch, col_offset, f, bias, vecs, width, out_pitch, out);
  };
  switch (size) {
    case 3: run.template operator()<3>(); break;
    case 5: run.template operator()<5>(); break;
    default: run.template operator()<7>(); break;
  }
}

// Any other filter (RepLKNet's 13x13 to 31x31, dilated, rectangular) takes passes over the n input
// rows of the pass that lie inside the plane, from row `in`: input row i and output row j meet
// through filter row f_rows[i * Rows + j] (an offset into the filter, or its trailing zero row
// where they do not).
template <typename acc_t, int64_t VecBytes, int64_t Rows, int64_t U>
void block_pass(const acc_t* in, int64_t pitch, int64_t n, const int64_t* f_rows,
                const acc_t* filter, int64_t S, const int64_t* col_offset, acc_t bias,
                int64_t out_pitch, int64_t tail, acc_t* out) {
  using V = Vec<acc_t, VecBytes>;
  typename V::type acc[Rows][U];
  for (int64_t j = 0; j < Rows; ++j) {
    for (int64_t u = 0; u < U; ++u) acc[j][u] = V::splat(bias);
  }
  for (int64_t i = 0; i < n; ++i) {
    const acc_t* f[Rows];
    for (int64_t j = 0; j < Rows; ++j) f[j] = filter + f_rows[i * Rows + j];
    for (int64_t s = 0; s < S; ++s) {
      const acc_t* src = in + i * pitch + col_offset[s];
      typename V::type v[U];
      for (int64_t u = 0; u < U; ++u) v[u] = V::load(src + u * V::lanes);
#pragma GCC unroll 8  // constant j and u keep acc in registers
      for (int64_t j = 0; j < Rows; ++j) {
        for (int64_t u = 0; u < U; ++u) acc[j][u] += f[j][s] * v[u];
      }
    }
  }
  store_pass<acc_t, VecBytes>(acc, out_pitch, tail, out);
}

// The first input row inside the plane, and how many, that a pass of Rows output rows from row oh
// reads; and its f_rows table (block_pass), built on first use and kept for the task's planes,
// since it depends on the pass alone.
class BlockPasses {
 public:
  explicit BlockPasses(const ConvParams& p) : p_(p), index_((kMaxRows + 1) * p.P, -1) {}

  int64_t first(int64_t oh) const { return std::max<int64_t>(0, oh * p_.stride_h - p_.pad_h); }
  int64_t count(int64_t Rows, int64_t oh) const {
    const int64_t last = (oh + Rows - 1) * p_.stride_h - p_.pad_h + (p_.R - 1) * p_.dil_h;
    return std::max<int64_t>(0, std::min(last, p_.H - 1) - first(oh) + 1);
  }
  const int64_t* f_rows(int64_t Rows, int64_t oh) {
    int64_t& at = index_[Rows * p_.P + oh];
    if (at < 0) {
      at = static_cast<int64_t>(tables_.size());
      tables_.resize(at + count(Rows, oh) * Rows, p_.R * p_.S);
      for (int64_t j = 0; j < Rows; ++j) {
        const Range taps = tap_rows(oh + j, p_.H, p_.R, p_.stride_h, p_.pad_h, p_.dil_h);
        for (int64_t r = taps.begin; r < taps.end; ++r) {
          const int64_t ih = (oh + j) * p_.stride_h - p_.pad_h + r * p_.dil_h;
          tables_[at + (ih - first(oh)) * Rows + j] = r * p_.S;
        }
      }
    }
    return tables_.data() + at;
  }

 private:
  static constexpr int64_t kMaxRows = 8;  // for_each_pass's widest pass
  const ConvParams& p_;
  std::vector<int64_t> index_;   // (Rows, oh) -> offset of its table, or -1
  std::vector<int64_t> tables_;
};

// All P output rows of one filter (`filter` ends with a zero row) over the unpadded plane (row 0 at
// `plane`), as fast_plane.
template <typename acc_t, int64_t VecBytes>
void block_plane(const ConvParams& p, const acc_t* plane, int64_t pitch,
                 const int64_t* col_offset, const acc_t* filter, acc_t bias, int64_t vecs,
                 int64_t width, int64_t out_pitch, acc_t* out, BlockPasses& passes) {
  constexpr int64_t L = Vec<acc_t, VecBytes>::lanes;
  for_each_tile<L>(vecs, [&]<int64_t U>(int64_t q0) {
    const int64_t tail = tile_tail<L, U>(q0, width);
    for_each_pass<U>(p.P, [&]<int64_t Rows>(int64_t oh) {
      block_pass<acc_t, VecBytes, Rows, U>(plane + passes.first(oh) * pitch + q0, pitch,
                                           passes.count(Rows, oh), passes.f_rows(Rows, oh),
                                           filter, p.S, col_offset, bias, out_pitch, tail,
                                           out + oh * out_pitch + q0);
    });
  });
}

// Whether rows x pitch staged values hold no Inf or NaN (x - x is 0 exactly for finite x).
template <typename acc_t>
bool all_finite(const acc_t* staged, int64_t n) {
  acc_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += staged[i] - staged[i];
  return sum == acc_t(0);
}

// All P output rows of one filter, each output a sum over exactly the taps it reads. Block passes
// multiply the input rows that do not reach an output row by a zero filter row, which would turn
// an Inf or NaN in such a row into NaN in outputs that never read it; planes holding one (rare)
// take this loop instead, so non-finite values propagate as they do in torch.
template <typename acc_t>
void direct_plane(const ConvParams& p, const acc_t* plane, int64_t pitch,
                  const int64_t* col_offset, const acc_t* filter, acc_t bias, int64_t out_pitch,
                  acc_t* out) {
  for (int64_t oh = 0; oh < p.P; ++oh) {
    const Range rows = tap_rows(oh, p.H, p.R, p.stride_h, p.pad_h, p.dil_h);
    for (int64_t q = 0; q < p.Q; ++q) {
      acc_t sum = bias;
      for (int64_t r = rows.begin; r < rows.end; ++r) {
        const acc_t* in = plane + (oh * p.stride_h - p.pad_h + r * p.dil_h) * pitch + q;
        for (int64_t s = 0; s < p.S; ++s) sum += filter[r * p.S + s] * in[col_offset[s]];
      }
      out[oh * out_pitch + q] = sum;
    }
  }
}

template <typename scalar_t, int64_t VecBytes>
void correlate_planes(const ConvParams& p, const scalar_t* x, const scalar_t* w, bool rotate,
                      const scalar_t* bias, scalar_t* y) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t L = Vec<acc_t, VecBytes>::lanes;
  const int64_t M = p.K / p.C;
  const int64_t taps = p.R * p.S;
  const int64_t vecs = (p.Q + L - 1) / L;  // vectors per output row, the last one partly used
  const int64_t fast_size = fast_filter_size(p);
  const PhasedRow row(p);
  // The fast passes read the pad_h zero rows above and below the plane; block passes skip them.
  const int64_t top = fast_size ? p.pad_h : 0;
  // Float and double rows go straight into y, half types through `out`, then converted.
  constexpr bool direct = std::is_same_v<scalar_t, acc_t>;
  const int64_t out_pitch = direct ? p.Q : vecs * L;
  std::vector<int64_t> col_offset(p.S);
  for (int64_t s = 0; s < p.S; ++s) col_offset[s] = row.at(s * p.dil_w);

  at::parallel_for(0, p.N * p.C, 1, [&](int64_t begin, int64_t end) {
    // L spare zeros at the end: the tiles' unused lanes may read past the last staged row. The
    // margins are never written, so they stay zero.
    std::vector<acc_t> plane((p.H + 2 * top) * row.pitch() + L, acc_t(0));
    acc_t* const rows_begin = plane.data() + top * row.pitch();  // row 0 of the plane
    std::vector<acc_t> filter(taps + p.S, acc_t(0));  // and a zero row for block passes
    std::vector<acc_t> out(direct ? 0 : p.P * out_pitch);
    BlockPasses passes(p);
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / p.C, c = nc % p.C;
      stage_plane(x + nc * p.H * p.W, p.H, row, rows_begin, /*zero_margins=*/false);
      const bool finite = fast_size || all_finite(rows_begin, p.H * row.pitch());
      for (int64_t k = c * M; k < (c + 1) * M; ++k) {
        load_row(w + k * taps, taps, filter.data());
        if (rotate) std::reverse(filter.begin(), filter.begin() + taps);
        const acc_t b = bias ? static_cast<acc_t>(bias[k]) : acc_t(0);
        scalar_t* y_plane = y + (n * p.K + p.output_channel(c, k - c * M)) * p.P * p.Q;
        acc_t* const dst = direct ? reinterpret_cast<acc_t*>(y_plane) : out.data();
        const int64_t width = direct ? p.Q : out_pitch;
        if (fast_size) {
          fast_plane_any<acc_t, VecBytes>(fast_size, p, plane.data(), row.pitch(),
                                          col_offset.data(), filter.data(), b, vecs, width,
                                          out_pitch, dst);
        } else if (finite) {
          block_plane<acc_t, VecBytes>(p, rows_begin, row.pitch(), col_offset.data(),
                                       filter.data(), b, vecs, width, out_pitch, dst, passes);
        } else {
          direct_plane(p, rows_begin, row.pitch(), col_offset.data(), filter.data(), b,
                       out_pitch, dst);
        }
        if constexpr (!direct) {
          for (int64_t oh = 0; oh < p.P; ++oh) {
            for (int64_t q = 0; q < p.Q; ++q) {
              y_plane[oh * p.Q + q] = static_cast<scalar_t>(out[oh * out_pitch + q]);
            }
          }
        }
      }
    }
  });
}

}  // namespace

void depthwise_correlate(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                         bool rotate, const at::Tensor& bias, const at::Tensor& output) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "depthwise_correlate", [&] {
        const auto planes = fills_wide_vector<at::opmath_type<scalar_t>>(p.Q)
                                ? correlate_planes<scalar_t, kWideVectorBytes>
                                : correlate_planes<scalar_t, 32>;
        planes(p, input.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(), rotate,
               bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
               output.mutable_data_ptr<scalar_t>());
      });
}

void depthwise_fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& output) {
  depthwise_correlate(p, input, weight, /*rotate=*/false, bias, output);
}

}  // namespace convkernels::cpu
