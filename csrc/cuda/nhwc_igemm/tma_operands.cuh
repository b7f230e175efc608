// The tensor maps through which the TMA implicit GEMM (tma_conv_kernel.cuh) copies its operands,
// encoded on the host (simt::encode_tensor_map_tiled: the driver's cuTensorMapEncodeTiled under
// nvcc). A copy lands kChunkBytes (64) of channels per row, 64-byte swizzled: WarpgroupTileShape's
// K-major stage layout, which wgmma reads (warpgroup_tile.cuh).
//  - activations: NHWC as a 5-D tensor (channel of the group, group, w, h, image), so that channels
//    past a group's read as out of bounds (zeros) where the last chunk of a tap is part padding.
//    The box is a PixelTile at one filter tap: element strides are the convolution's strides, and
//    pixels in the padding are out of bounds (zeros) too.
//  - filters: KRSC as a 3-D tensor (channel, tap, output channel), box kChunkBytes of channels x
//    one tap x the block's columns; columns past K read zeros, those of the next group are
//    multiplied and never stored.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <type_traits>

#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include "../../simt/hopper/tensor_map.h"
#include "pixel_tile.cuh"
#include "problem.cuh"

namespace convkernels::cuda::nhwc_igemm {

constexpr int kChunkBytes = 64;  // a stage's channels per row: WarpgroupTileShape::kRowBytes

template <typename T>
constexpr CUtensorMapDataType tensor_map_type() {
  if constexpr (std::is_same_v<T, c10::Half>) {
    return CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  } else if constexpr (std::is_same_v<T, c10::BFloat16>) {
    return CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  } else {
    static_assert(std::is_same_v<T, float>, "float16, bfloat16 or float32");
    return CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
  }
}

template <typename T, int kRank>
CUtensorMap encode_tensor_map(const T* global, const cuuint64_t (&dims)[kRank],
                              const cuuint64_t (&strides)[kRank - 1], const cuuint32_t (&box)[kRank],
                              const cuuint32_t (&element_strides)[kRank]) {
  CUtensorMap map;
  const CUresult result = simt::encode_tensor_map_tiled(
      &map, tensor_map_type<T>(), kRank, const_cast<T*>(global), dims, strides, box, element_strides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_64B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  TORCH_CHECK(result == CUDA_SUCCESS, "convkernels: cuTensorMapEncodeTiled failed (CUresult ",
              static_cast<int>(result), ")");
  return map;
}

template <typename T>
CUtensorMap activation_map(const NhwcConvProblem& p, const T* in, PixelTile box) {
  constexpr cuuint64_t e = sizeof(T);
  const cuuint64_t C = p.C;
  return encode_tensor_map<T, 5>(
      in,
      {static_cast<cuuint64_t>(p.c_per_group), static_cast<cuuint64_t>(p.groups), static_cast<cuuint64_t>(p.W),
       static_cast<cuuint64_t>(p.H), static_cast<cuuint64_t>(p.N)},
      {p.c_per_group * e, C * e, p.W * C * e, static_cast<cuuint64_t>(p.H) * p.W * C * e},
      {kChunkBytes / e, 1, static_cast<cuuint32_t>(box.q * p.stride_w), static_cast<cuuint32_t>(box.p * p.stride_h),
       static_cast<cuuint32_t>(box.n)},
      {1, 1, static_cast<cuuint32_t>(p.stride_w), static_cast<cuuint32_t>(p.stride_h), 1});
}

template <typename T>
CUtensorMap filter_map(const NhwcConvProblem& p, const T* filters, int block_n) {
  constexpr cuuint64_t e = sizeof(T);
  const cuuint64_t taps = static_cast<cuuint64_t>(p.R) * p.S;
  return encode_tensor_map<T, 3>(
      filters,
      {static_cast<cuuint64_t>(p.c_per_group), taps, static_cast<cuuint64_t>(p.groups) * p.k_per_group},
      {p.c_per_group * e, taps * p.c_per_group * e}, {kChunkBytes / e, 1, static_cast<cuuint32_t>(block_n)},
      {1, 1, 1});
}

}  // namespace convkernels::cuda::nhwc_igemm
