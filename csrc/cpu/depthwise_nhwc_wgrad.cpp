// Depthwise convolution over channels_last activations, weight gradient:
//   dw[k, 0, r, s] = sum over n, p, q of
//                    dy[n, p, q, k] * x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, k/M]
// vectorised over k: each tap (r, s) of a vector of channels keeps one vector of sums, one lane per
// filter, so no horizontal reduction is needed. At M > 1 x is first expanded to K channels
// (x_rep[.., k] = x[.., k / M]).
//
// For one dy row and the filter rows in range, the columns q whose taps are all in range (the
// interior) go in blocks of up to kMaxBlock taps whose sums stay in registers: each dy vector is
// loaded once and feeds one FMA per tap of the block. The border columns add their taps in range
// one by one. Deterministic for any thread count: tasks are (channel vector, chunk of dy rows),
// chunks fixed by the shape, each summing into its own slot in a fixed order, and the chunks are
// added in order at the end. Half types run in float (depthwise_nhwc_io.h).
#include <algorithm>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "cpu_kernels.h"
#include "depthwise_nhwc_io.h"
#include "depthwise_plane.h"
#include "index_math.h"
#include "simd_vec.h"

namespace convkernels::cpu {
namespace {

constexpr int64_t kMaxBlock = 16;  // taps per block: their sums, dy and an x vector in 32 zmm
constexpr int64_t kTasks = 8;      // at least this many tasks where there are as many dy rows

template <typename T, int64_t Bytes, bool Tail>
struct Loader {
  using V = Vec<T, Bytes>;
  int64_t lanes;
  typename V::type operator()(const T* p) const {
    if constexpr (Tail) return depthwise::load_head<T, Bytes>(p, lanes);
    return V::load(p);
  }
};

// sums[b] += sum over q in [q_begin, q_end) of dy[q * pitch] * src[b][q * x_step] for b < B.
template <typename T, int64_t Bytes, bool Tail, int64_t B>
void block(const Loader<T, Bytes, Tail>& load, const T* dy, int64_t pitch, const T* const* src,
           int64_t x_step, int64_t q_begin, int64_t q_end, T* const* sums) {
  using V = Vec<T, Bytes>;
  typename V::type acc[B];
  for (int64_t b = 0; b < B; ++b) acc[b] = V::load(sums[b]);
  for (int64_t q = q_begin; q < q_end; ++q) {
    const typename V::type d = load(dy + q * pitch);
    for (int64_t b = 0; b < B; ++b) acc[b] += d * load(src[b] + q * x_step);
  }
  for (int64_t b = 0; b < B; ++b) V::store(sums[b], acc[b]);
}

// block<B> for a runtime count in [1, B].
template <typename T, int64_t Bytes, bool Tail, int64_t B = kMaxBlock>
void any_block(int64_t count, const Loader<T, Bytes, Tail>& load, const T* dy, int64_t pitch,
               const T* const* src, int64_t x_step, int64_t q_begin, int64_t q_end,
               T* const* sums) {
  if constexpr (B > 1) {
    if (count < B) return any_block<T, Bytes, Tail, B - 1>(count, load, dy, pitch, src, x_step,
                                                           q_begin, q_end, sums);
  }
  block<T, Bytes, Tail, B>(load, dy, pitch, src, x_step, q_begin, q_end, sums);
}

template <typename T, int64_t Bytes>
void wgrad_vectors(const ConvParams& p, const T* x, const T* dy, T* dw) {
  using V = Vec<T, Bytes>;
  constexpr int64_t L = V::lanes;
  const int64_t taps = p.R * p.S, K = p.K;
  const int64_t vecs = ceil_div(K, L);
  const int64_t rows = p.N * p.P;
  // The dy rows split into chunks, as many as make kTasks tasks: a function of the shape alone.
  const int64_t chunks = std::min(rows, ceil_div(kTasks, vecs));
  const int64_t chunk_rows = ceil_div(rows, chunks);
  // Columns q whose tap s is in range: [q_lo[s], q_hi[s]); all of them: [inner_lo, inner_hi).
  std::vector<int64_t> q_lo(p.S), q_hi(p.S), x_col(p.S);
  int64_t inner_lo = 0, inner_hi = p.Q;
  for (int64_t s = 0; s < p.S; ++s) {
    x_col[s] = s * p.dil_w - p.pad_w;  // x column of q = 0
    // q in range iff 0 <= q * sw + x_col[s] < W.
    q_lo[s] = x_col[s] >= 0 ? 0 : ceil_div(-x_col[s], p.stride_w);
    q_hi[s] = std::clamp<int64_t>(p.W - x_col[s] > 0 ? ceil_div(p.W - x_col[s], p.stride_w) : 0,
                                  0, p.Q);
    inner_lo = std::max(inner_lo, q_lo[s]);
    inner_hi = std::min(inner_hi, q_hi[s]);
  }
  std::vector<T> partial(vecs * chunks * taps * L);

  at::parallel_for(0, vecs * chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<const T*> src(taps);
    std::vector<T*> sums(taps);
    std::vector<int64_t> tap_s(taps);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t v = task / chunks, chunk = task % chunks;
      const int64_t c0 = v * L;
      T* const acc = partial.data() + task * taps * L;
      std::fill(acc, acc + taps * L, T(0));
      const auto run = [&]<bool Tail>() {
        const Loader<T, Bytes, Tail> load{std::min(L, K - c0)};
        for (int64_t row = chunk * chunk_rows; row < std::min(rows, (chunk + 1) * chunk_rows);
             ++row) {
          const int64_t n = row / p.P, oh = row % p.P;
          const Range rr = tap_rows(oh, p.H, p.R, p.stride_h, p.pad_h, p.dil_h);
          const T* dy_row = dy + row * p.Q * K + c0;
          int64_t count = 0;
          for (int64_t r = rr.begin; r < rr.end; ++r) {
            const int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
            for (int64_t s = 0; s < p.S; ++s, ++count) {
              src[count] = x + ((n * p.H + ih) * p.W + x_col[s]) * K + c0;
              sums[count] = acc + (r * p.S + s) * L;
              tap_s[count] = s;
            }
          }
          for (int64_t t = 0; t < count && inner_lo < inner_hi; t += kMaxBlock) {
            any_block<T, Bytes, Tail>(std::min(kMaxBlock, count - t), load, dy_row, K,
                                      src.data() + t, p.stride_w * K, inner_lo, inner_hi,
                                      sums.data() + t);
          }
          for (int64_t q = 0; q < p.Q; ++q) {
            if (q >= inner_lo && q < inner_hi) continue;
            const typename V::type d = load(dy_row + q * K);
            for (int64_t t = 0; t < count; ++t) {
              const int64_t s = tap_s[t];
              if (q < q_lo[s] || q >= q_hi[s]) continue;
              V::store(sums[t], V::load(sums[t]) + d * load(src[t] + q * p.stride_w * K));
            }
          }
        }
      };
      if (c0 + L <= K) {
        run.template operator()<false>();
      } else {
        run.template operator()<true>();
      }
    }
  });

  // The chunks' sums added in chunk order, then each lane written to its filter.
  for (int64_t v = 0; v < vecs; ++v) {
    for (int64_t t = 0; t < taps; ++t) {
      const T* part = partial.data() + (v * chunks * taps + t) * L;
      typename V::type sum = V::load(part);
      for (int64_t chunk = 1; chunk < chunks; ++chunk) sum += V::load(part + chunk * taps * L);
      for (int64_t lane = 0; lane < std::min(L, K - v * L); ++lane) {
        dw[(v * L + lane) * taps + t] = sum[lane];
      }
    }
  }
}

}  // namespace

void depthwise_wgrad_nhwc(const ConvParams& p, const at::Tensor& input,
                          const at::Tensor& grad_output, const at::Tensor& grad_weight) {
  using namespace nhwc;
  const int64_t M = p.K / p.C;
  at::Tensor x = in_opmath(input);
  if (M > 1) {  // x_rep[.., k] = x[.., k / M]
    x = x.permute({0, 2, 3, 1}).unsqueeze(4).expand({p.N, p.H, p.W, p.C, M}).contiguous();
  }
  const at::Tensor dy = in_opmath(grad_output);
  const at::Tensor dw = out_opmath(grad_weight, at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "depthwise_wgrad_nhwc", [&] {
    const auto vectors = 4 * p.K >= 3 * Vec<scalar_t, kWideVectorBytes>::lanes
                             ? wgrad_vectors<scalar_t, kWideVectorBytes>
                             : wgrad_vectors<scalar_t, 32>;
    vectors(p, x.const_data_ptr<scalar_t>(), dy.const_data_ptr<scalar_t>(),
            dw.mutable_data_ptr<scalar_t>());
  });
  if (!dw.is_same(grad_weight)) grad_weight.copy_(dw);
}

}  // namespace convkernels::cpu
