// Pointwise (1x1, stride 1, no padding) convolution, input gradient: per image and group,
// dx[g*Cg + c, :] = bias[g*Cg + c] + sum over k < Kg of w[g*Kg + k, c] * dy[g*Kg + k, :].
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>

#include "cpu_kernels.h"
#include "pointwise_tile.h"

namespace convkernels::cpu {

void pointwise_dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& grad_input) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad_output.scalar_type(), "pointwise_dgrad", [&] {
        // A = W^T: row c, depth k at w[k * Cg + c].
        pointwise::weight_times_images<scalar_t>(
            p, p.c_per_group(), p.k_per_group(), weight.const_data_ptr<scalar_t>(), 1,
            p.c_per_group(), grad_output.const_data_ptr<scalar_t>(),
            bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
            [Cg = p.c_per_group()](int64_t g, int64_t c) { return g * Cg + c; },
            grad_input.mutable_data_ptr<scalar_t>());
      });
}

}  // namespace convkernels::cpu
