// Pointwise (1x1, stride 1, no padding) convolution, forward: per image and group,
// y[g*Kg + k, :] = bias[g*Kg + k] + sum over c < Cg of w[g*Kg + k, c] * x[g*Cg + c, :].
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>

#include "cpu_kernels.h"
#include "pointwise_tile.h"

namespace convkernels::cpu {

void pointwise_fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& output) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "pointwise_fprop", [&] {
        // A = W: row k, depth c at w[k * Cg + c].
        pointwise::weight_times_images<scalar_t>(
            p, p.k_per_group(), p.c_per_group(), weight.const_data_ptr<scalar_t>(),
            p.c_per_group(), 1, input.const_data_ptr<scalar_t>(),
            bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
            [&p](int64_t g, int64_t k) { return p.output_channel(g, k); },
            output.mutable_data_ptr<scalar_t>());
      });
}

}  // namespace convkernels::cpu
