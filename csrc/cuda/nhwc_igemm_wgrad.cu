// The weight gradient on tensor cores (nhwc_igemm_wgrad.h) and its kernels' instantiations.
#include "nhwc_igemm_wgrad.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include <ATen/ops/empty.h>

#include "nhwc_igemm/wgrad_kernel.cuh"
#include "nhwc_igemm_math.h"
#include "nhwc_igemm_operands.h"

namespace convkernels::cuda {
namespace {

using nhwc_igemm::NhwcWgradProblem;

// The kernel indexes pixels, channels and taps in 32-bit integers (offsets in 64) and counts a
// split's stages in an int.
bool fits_the_kernel(const ConvParams& p) {
  constexpr int64_t kLimit = std::numeric_limits<int32_t>::max() / 4;
  const int64_t reach_h = (p.P - 1) * p.stride_h + (p.R - 1) * p.dil_h + p.pad_h + p.H;
  const int64_t reach_w = (p.Q - 1) * p.stride_w + (p.S - 1) * p.dil_w + p.pad_w + p.W;
  // R*S*C with channels padded to 16 bytes: at most 8x (1 per group to 8 half-type elements).
  return std::max({p.C, p.K, reach_h, reach_w, 8 * p.R * p.S * p.C, p.K * p.R * p.S}) < kLimit &&
         p.N * p.P * p.Q / 8 < kLimit;
}

template <typename T, class Math>
void run(NhwcWgradProblem problem, const at::Tensor& x, const at::Tensor& dy, const at::Tensor& grad_weight,
         cudaStream_t stream) {
  using Accumulator = nhwc_igemm::WgradAccumulator<T, Math>;
  nhwc_igemm::plan_wgrad_splits<nhwc_igemm::WgradTileFor<T>>(problem);
  // Owned by the caching allocator until the end of this function, which is stream-ordered.
  const at::Tensor partials = at::empty({problem.splits * problem.filter_numel()},
                                        x.options().dtype(c10::CppTypeToScalarType<Accumulator>::value));
  nhwc_igemm::launch_channels_last_wgrad<T, Math>(problem, x.const_data_ptr<T>(), dy.const_data_ptr<T>(),
                                                  partials.mutable_data_ptr<Accumulator>(),
                                                  grad_weight.mutable_data_ptr<T>(), stream);
}

}  // namespace

// Groups that fill the tiles: a stage's N tile takes 64 bytes of a group's channels per tap and
// its M tile at least 64 output channels, so small groups (ResNeXt's 4-16 channels) would multiply
// mostly zeros; the generation-1 GEMM's narrow tile wastes less there until the weight gradient
// packs several groups per block as fprop and dgrad do.
bool nhwc_igemm_wgrad_applies(const ConvParams& p, at::ScalarType dtype) {
  const bool groups_fill_tiles = p.groups == 1 || (p.c_per_group() >= 16 && p.k_per_group() > 16);
  return groups_fill_tiles && nhwc_igemm_operands_fit(p, dtype) && fits_the_kernel(p);
}

void nhwc_igemm_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                      const at::Tensor& grad_weight, bool allow_tf32, cudaStream_t stream) {
  const at::ScalarType dtype = input.scalar_type();
  const int64_t c_per_group = padded_to_16_bytes(p.c_per_group(), dtype);
  const int64_t k_per_group = padded_to_16_bytes(p.k_per_group(), dtype);
  NhwcWgradProblem problem{.N = p.N, .H = narrow(p.H), .W = narrow(p.W), .C = narrow(p.groups * c_per_group),
                           .P = narrow(p.P), .Q = narrow(p.Q), .K = narrow(p.groups * k_per_group),
                           .R = narrow(p.R), .S = narrow(p.S), .stride_h = narrow(p.stride_h),
                           .stride_w = narrow(p.stride_w), .pad_h = narrow(p.pad_h), .pad_w = narrow(p.pad_w),
                           .dil_h = narrow(p.dil_h), .dil_w = narrow(p.dil_w), .groups = narrow(p.groups),
                           .c_per_group = narrow(c_per_group), .k_per_group = narrow(k_per_group),
                           .filter_c = narrow(p.c_per_group()), .filter_k = narrow(p.k_per_group())};
  const at::Tensor x = nhwc_operand(input, p.groups, c_per_group);
  const at::Tensor dy = nhwc_operand(grad_output, p.groups, k_per_group);
  dispatch_math(dtype, allow_tf32,
                [&]<typename T, class Math>() { run<T, Math>(problem, x, dy, grad_weight, stream); });
}

}  // namespace convkernels::cuda
