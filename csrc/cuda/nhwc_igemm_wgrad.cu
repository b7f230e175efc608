// The weight gradient on tensor cores (nhwc_igemm_wgrad.h) and its kernels' instantiations.
#include "nhwc_igemm_wgrad.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include <ATen/ops/empty.h>

#include "nhwc_igemm/wgrad_kernel.cuh"
#include "nhwc_igemm_math.h"
#include "nhwc_igemm_operands.h"
#include "relayout.h"

namespace convkernels::cuda {
namespace {

using nhwc_igemm::NhwcWgradProblem;

// The kernel indexes pixels, channels and taps in 32-bit integers (offsets in 64) and counts a
// split's stages in an int.
bool fits_the_kernel(const ConvParams& p) {
  constexpr int64_t kLimit = std::numeric_limits<int32_t>::max() / 4;
  const int64_t reach_h = (p.P - 1) * p.stride_h + (p.R - 1) * p.dil_h + p.pad_h + p.H;
  const int64_t reach_w = (p.Q - 1) * p.stride_w + (p.S - 1) * p.dil_w + p.pad_w + p.W;
  // Channels and outputs padded to 16 bytes or n8 tiles: at most 8x (1 per group to 8).
  return std::max({p.C, 8 * p.K, reach_h, reach_w, 8 * p.R * p.S * p.C, p.K * p.R * p.S}) < kLimit &&
         p.N * p.P * p.Q / 8 < kLimit;
}

// Small groups pack unpadded where several make whole 16-byte chunks (GroupPacking::unpadded;
// ResNeXt's 4 channels in half types: an m16n8 tile's rows are 4 groups' outputs and its columns
// 2 groups' channels, a quarter of its products useful, where groups padded to 8 channels and 8
// outputs leave an eighth; and x and dy are read as they are, not copied padded). Else each
// group's outputs, rows of the GEMM read from dy in 16-byte chunks, are padded to those alone.
GroupPacking group_packing(const ConvParams& p, at::ScalarType dtype) {
  return GroupPacking::unpadded(p.groups, p.c_per_group(), p.k_per_group(), dtype)
      .value_or(GroupPacking(p.groups, p.c_per_group(), p.k_per_group(), dtype, padded_to_16_bytes(1, dtype)));
}

template <typename T, class Math>
void run(NhwcWgradProblem problem, const at::Tensor& x, const at::Tensor& dy, const at::Tensor& grad_weight,
         cudaStream_t stream) {
  using Accumulator = nhwc_igemm::WgradAccumulator<T, Math>;
  nhwc_igemm::plan_wgrad_splits<T, Accumulator>(problem, nhwc_igemm::wgrad_block<T, Math>(problem));
  // Split pixels add up in a workspace (one split stores dw itself), owned by the caching
  // allocator until the end of this function, which is stream-ordered.
  const int64_t workspace = problem.splits > 1 ? problem.splits * problem.filter_numel() : 0;
  const at::Tensor partials = at::empty({workspace}, x.options().dtype(c10::CppTypeToScalarType<Accumulator>::value));
  nhwc_igemm::launch_channels_last_wgrad<T, Math>(problem, x.const_data_ptr<T>(), dy.const_data_ptr<T>(),
                                                  partials.mutable_data_ptr<Accumulator>(),
                                                  grad_weight.mutable_data_ptr<T>(), stream);
}

}  // namespace

// Groups too small to fill a tile (a stage's N tile takes 64 bytes of a group's channels per tap,
// its M tile 64 output channels) are packed several to a GEMM group (GroupPacking). Where no
// divisor of the groups packs them (11 groups: none of 2-8 divides 11), the generation-1 GEMM's
// narrow tile wastes less than a GEMM group per convolution group would.
bool nhwc_igemm_wgrad_applies(const ConvParams& p, at::ScalarType dtype) {
  const bool packs_or_fills = group_packing(p, dtype).packed > 1 ||
                              GroupPacking::groups_fill_tiles(p.groups, p.c_per_group(), p.k_per_group());
  return packs_or_fills && nhwc_igemm_operands_fit(p, dtype) && fits_the_kernel(p);
}

void nhwc_igemm_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                      const at::Tensor& grad_weight, bool allow_tf32, cudaStream_t stream) {
  const at::ScalarType dtype = input.scalar_type();
  const GroupPacking packing = group_packing(p, dtype);
  const int64_t packed_k = packing.packed > 1 ? packing.packed_k : padded_to_16_bytes(p.k_per_group(), dtype);
  NhwcWgradProblem problem{.N = p.N, .H = narrow(p.H), .W = narrow(p.W), .C = narrow(p.groups * packing.packed_c),
                           .P = narrow(p.P), .Q = narrow(p.Q), .K = narrow(p.groups * packed_k),
                           .R = narrow(p.R), .S = narrow(p.S), .stride_h = narrow(p.stride_h),
                           .stride_w = narrow(p.stride_w), .pad_h = narrow(p.pad_h), .pad_w = narrow(p.pad_w),
                           .dil_h = narrow(p.dil_h), .dil_w = narrow(p.dil_w),
                           .groups = narrow(p.groups / packing.packed), .c_per_group = narrow(packing.gemm_c()),
                           .k_per_group = narrow(packing.packed * packed_k), .packed = narrow(packing.packed),
                           .packed_c = narrow(packing.packed_c), .packed_k = narrow(packed_k),
                           .filter_c = narrow(p.c_per_group()), .filter_k = narrow(p.k_per_group())};
  const at::Tensor x = nhwc_operand(input, p.groups, packing.packed_c);
  const at::Tensor dy = nhwc_operand(grad_output, p.groups, packed_k);
  // The kernels write dw in the GEMM's column order, torch's channels_last (K, R, S, C/g).
  write_in_format(grad_weight, at::MemoryFormat::ChannelsLast, [&](const at::Tensor& dw) {
    dispatch_math(dtype, allow_tf32, [&]<typename T, class Math>() { run<T, Math>(problem, x, dy, dw, stream); });
  });
}

}  // namespace convkernels::cuda
