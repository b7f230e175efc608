// Pointwise (1x1, stride 1, no padding) convolution, weight gradient: per group,
// dw[g*Kg + k, c] = sum over images n and pixels hw of dy[n, g*Kg + k, hw] * x[n, g*Cg + c, hw].
//
// The matrix product of wgrad_gemm.h over the pixels of all images, with the dy channels and the
// x channels as its rows, staged as they are.
#include <algorithm>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>

#include "cpu_kernels.h"
#include "wgrad_gemm.h"

namespace convkernels::cpu {
namespace {

template <typename scalar_t>
void wgrad_groups(const ConvParams& p, const scalar_t* x, const scalar_t* dy, scalar_t* dw) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t HW = p.H * p.W, Kg = p.k_per_group(), Cg = p.c_per_group();
  // Either side may be B: then its rows are nonzero anywhere.
  const auto stage_dy = [&](int64_t g, int64_t k0, int64_t count, int64_t d0, int64_t len,
                            int64_t pitch, acc_t* dst, Range* nonzero = nullptr) {
    wgrad::stage_channels(dy + (g * Kg + k0) * HW, p.K * HW, HW, count, d0, len, pitch, dst);
    if (nonzero) std::fill(nonzero, nonzero + count, Range{0, len});
  };
  const auto stage_x = [&](int64_t g, int64_t c0, int64_t count, int64_t d0, int64_t len,
                           int64_t pitch, acc_t* dst, Range* nonzero = nullptr) {
    wgrad::stage_channels(x + (g * Cg + c0) * HW, p.C * HW, HW, count, d0, len, pitch, dst);
    if (nonzero) std::fill(nonzero, nonzero + count, Range{0, len});
  };
  // A is transposed once per chunk and B is not: A is the side with fewer channels.
  if (Kg <= Cg) {
    wgrad::weight_gradient<acc_t>(p.groups, Kg, Cg, p.N * HW, stage_dy, stage_x,
                                  [&](int64_t g, int64_t k, int64_t c, acc_t v) {
                                    dw[(g * Kg + k) * Cg + c] = static_cast<scalar_t>(v);
                                  });
  } else {
    wgrad::weight_gradient<acc_t>(p.groups, Cg, Kg, p.N * HW, stage_x, stage_dy,
                                  [&](int64_t g, int64_t c, int64_t k, acc_t v) {
                                    dw[(g * Kg + k) * Cg + c] = static_cast<scalar_t>(v);
                                  });
  }
}

}  // namespace

void pointwise_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                     const at::Tensor& grad_weight) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "pointwise_wgrad", [&] {
        wgrad_groups<scalar_t>(p, input.const_data_ptr<scalar_t>(),
                               grad_output.const_data_ptr<scalar_t>(),
                               grad_weight.mutable_data_ptr<scalar_t>());
      });
}

}  // namespace convkernels::cpu
