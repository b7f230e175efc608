// Depthwise convolution, weight gradient:
// dw[k, 0, r, s] = sum over n, p, q of dy[n, k, p, q] * x[n, k / M, p*sh - ph + r*dh, q*sw - pw + s*dw].
//
// One task per input channel c owns the M filters k of c. For each image it stages the x plane
// once (depthwise_plane.h); then every (dy row, tap) pair is a unit-stride dot product, summed in
// a fixed order (image, row, tap), so the result does not depend on the thread count.
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

template <typename scalar_t>
void wgrad_filters(const ConvParams& p, const scalar_t* x, const scalar_t* dy, scalar_t* dw) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t M = p.K / p.C;
  const int64_t taps = p.R * p.S;
  const PhasedRow row(p);
  at::parallel_for(0, p.C, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> plane(p.H * row.pitch());
    std::vector<acc_t> grad(M * taps);
    std::vector<acc_t> dy_row(p.Q);
    for (int64_t c = begin; c < end; ++c) {
      std::fill(grad.begin(), grad.end(), acc_t(0));
      for (int64_t n = 0; n < p.N; ++n) {
        for (int64_t h = 0; h < p.H; ++h) {
          stage_row(x + ((n * p.C + c) * p.H + h) * p.W, row, plane.data() + h * row.pitch());
        }
        for (int64_t m = 0; m < M; ++m) {
          const int64_t k = c * M + m;
          acc_t* g = grad.data() + m * taps;
          for (int64_t oh = 0; oh < p.P; ++oh) {
            load_row(dy + ((n * p.K + k) * p.P + oh) * p.Q, p.Q, dy_row.data());
            const Range rows = tap_rows(oh, p.H, p.R, p.stride_h, p.pad_h, p.dil_h);
            for (int64_t r = rows.begin; r < rows.end; ++r) {
              const acc_t* in = plane.data() + (oh * p.stride_h - p.pad_h + r * p.dil_h) * row.pitch();
              for (int64_t s = 0; s < p.S; ++s) {
                g[r * p.S + s] += dot(p.Q, dy_row.data(), in + row.at(s * p.dil_w));
              }
            }
          }
        }
      }
      for (int64_t i = 0; i < M * taps; ++i) dw[c * M * taps + i] = static_cast<scalar_t>(grad[i]);
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
