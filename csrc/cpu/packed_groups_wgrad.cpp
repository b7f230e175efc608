// Weight gradient over channels_last activations for packed groups narrower than a vector
// (pixel_tile.h: G = Cg = Kg of 2, 4 or 8, ResNeXt's narrow groups), into a channels_last dw:
//   dw[o, r, s, e] = sum over n, p, q of dy[n, p, q, o] * x[n, h, w, group(o) * G + e],
//   h = p*sh - ph + r*dh, w = q*sw - pw + s*dw.
// The matrix-product route would stage, at every position, a few channels per group and tap and
// leave most lanes of its tiles idle. Here lanes are output channels o across groups: at each
// position one vector of dy and, per tap, one vector of x (the same channels: the groups' inputs)
// give G products per vector, x's lanes spread to their group's channel e by a permute. A task
// owns NR output channels and a run of taps of one filter row, with their G sums per tap in
// registers, and sums over the positions in order: the result does not depend on the threads.
#include <algorithm>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "cpu_kernels.h"
#include "index_math.h"
#include "pixel_tile.h"

namespace convkernels::cpu {
namespace {

using pixel_tile::Tile;

template <int64_t G, typename acc_t>
void packed_groups_wgrad(const ConvParams& p, const acc_t* x, const acc_t* dy, acc_t* dw) {
  using V = typename Tile<acc_t>::V;
  constexpr int64_t L = V::lanes;
  // Vectors of output channels per task, and taps per pass: G sums per tap and vector, at most
  // 24 accumulators (AVX-512 has 32 registers).
  constexpr int64_t NV = G * 2 * 3 <= 24 ? 2 : 1;
  constexpr int64_t TAPS = std::max<int64_t>(1, 24 / (G * NV));
  constexpr int64_t NR = NV * L;
  const int64_t blocks = p.K / NR, passes = ceil_div(p.S, TAPS), RS = p.R * p.S;

  at::parallel_for(0, blocks * p.R * passes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t o0 = task / (p.R * passes) * NR;
      const int64_t r = task / passes % p.R, s0 = task % passes * TAPS;
      const int64_t taps = std::min(TAPS, p.S - s0);
      typename V::type acc[TAPS][G][NV] = {};
      for (int64_t n = 0; n < p.N; ++n) {
        for (int64_t oh = 0; oh < p.P; ++oh) {
          const int64_t h = oh * p.stride_h - p.pad_h + r * p.dil_h;
          if (h < 0 || h >= p.H) continue;
          const acc_t* x_row = x + (n * p.H + h) * p.W * p.C + o0;
          const acc_t* dy_row = dy + (n * p.P + oh) * p.Q * p.K + o0;
          for (int64_t ow = 0; ow < p.Q; ++ow) {
            typename V::type d[NV];
            for (int64_t v = 0; v < NV; ++v) d[v] = V::load(dy_row + ow * p.K + v * L);
#pragma GCC unroll 12
            for (int64_t t = 0; t < TAPS; ++t) {
              const int64_t w = ow * p.stride_w - p.pad_w + (s0 + t) * p.dil_w;
              if (t >= taps || w < 0 || w >= p.W) continue;
              for (int64_t v = 0; v < NV; ++v) {
                const typename V::type xv = V::load(x_row + w * p.C + v * L);
#pragma GCC unroll 8
                for (int64_t e = 0; e < G; ++e) {
                  acc[t][e][v] += d[v] * pixel_tile::spread_group_lane<G, V>(xv, e);
                }
              }
            }
          }
        }
      }
      for (int64_t t = 0; t < taps; ++t) {
        for (int64_t e = 0; e < G; ++e) {
          for (int64_t v = 0; v < NV; ++v) {
            for (int64_t j = 0; j < L; ++j) {
              const int64_t o = o0 + v * L + j;
              dw[(o * RS + r * p.S + s0 + t) * G + e] = acc[t][e][v][j];
            }
          }
        }
      }
    }
  });
}

}  // namespace

bool packed_groups_wgrad_nhwc(const ConvParams& p, const at::Tensor& input,
                              const at::Tensor& grad_output, const at::Tensor& grad_weight) {
  bool done = false;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "packed_groups_wgrad_nhwc", [&] {
        pixel_tile::with_packed_groups<scalar_t>(p, [&](auto packed) {
          constexpr int64_t G = decltype(packed)::value;
          // A group per vector (G = lanes) gains nothing here over the matrix product.
          if constexpr (G > 0 && G < pixel_tile::Tile<at::opmath_type<scalar_t>>::V::lanes) {
            packed_groups_wgrad<G>(p, input.const_data_ptr<scalar_t>(),
                                   grad_output.const_data_ptr<scalar_t>(),
                                   grad_weight.mutable_data_ptr<scalar_t>());
            done = true;
          }
        });
      });
  return done;
}

}  // namespace convkernels::cpu
