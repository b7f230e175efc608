// WarpMma: a warp's kWarpM x kWarpN tile of the block's accumulators, and one stage's multiply:
// fragments loaded from the swizzled shared tiles with ldmatrix, multiplied with mma.sync.
//
// Two chunks of k (32 bytes) are one MMA k-step for every element type: m16n8k16 for float16 and
// bfloat16, m16n8k8 in TF32 for float32 (whose operands are rounded to TF32 in registers). Their
// fragments have the same shape in 16-byte chunks, so one ldmatrix.x4 gives an m16 tile of A
// (matrices: rows 0-7 and 8-15 at chunk k, then at chunk k+1) and another gives two n8 tiles of B
// (rows 0-7 at chunks k and k+1, then rows 8-15).
//
// acc[i][j] is m16n8 tile (i, j) of the warp: with g = lane / 4 and t = lane % 4, elements
// (16i + g, 8j + 2t), (16i + g, 8j + 2t + 1), (16i + g + 8, 8j + 2t), (16i + g + 8, 8j + 2t + 1).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "../../simt/ldmatrix.h"
#include "../../simt/mma.h"
#include "../mma.cuh"
#include "tile_shape.cuh"

namespace convkernels::cuda::nhwc_igemm {

// Element types the channels_last tensor-core GEMMs store (float32 multiplies in TF32).
template <typename T>
constexpr bool is_tensor_core_element =
    std::is_same_v<T, c10::Half> || std::is_same_v<T, c10::BFloat16> || std::is_same_v<T, float>;

template <class Tile, typename T>
struct WarpMma {
  static_assert(is_tensor_core_element<T>, "float16, bfloat16 or float32 (in TF32)");
  static constexpr int kTilesM = Tile::kMmaTilesM, kTilesN = Tile::kMmaTilesN;

  float acc[kTilesM][kTilesN][4];
  int m0, n0;  // the warp tile's first row and column in the block tile
  int lane;

  __device__ explicit WarpMma(int tid) : lane(tid % 32) {
    const int warp = tid / 32;
    m0 = warp % Tile::kWarpsM * Tile::kWarpM;
    n0 = warp / Tile::kWarpsM * Tile::kWarpN;
#pragma unroll
    for (int i = 0; i < kTilesM; ++i) {
#pragma unroll
      for (int j = 0; j < kTilesN; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;
      }
    }
  }

  // acc += A * B over one stage: `a` and `b` are the stage's swizzled shared tiles.
  __device__ __forceinline__ void multiply(const char* a, const char* b) {
#pragma unroll
    for (int k = 0; k < Tile::kChunksK; k += 2) {
      uint32_t a_frag[kTilesM][4], b_frag[kTilesN][2];
#pragma unroll
      for (int i = 0; i < kTilesM; ++i) {
        simt::ldmatrix<4>(a_frag[i], a + swizzled_chunk(m0 + 16 * i + lane % 16, k + lane / 16));
        round_operands(a_frag[i]);
      }
#pragma unroll
      for (int j = 0; j < kTilesN; j += 2) {
        uint32_t pair[4];
        simt::ldmatrix<4>(pair, b + swizzled_chunk(n0 + 8 * j + lane / 16 * 8 + lane % 8, k + lane / 8 % 2));
        round_operands(pair);
        unpack_pair(pair, b_frag, j);
      }
#pragma unroll
      for (int i = 0; i < kTilesM; ++i) {
#pragma unroll
        for (int j = 0; j < kTilesN; ++j) mma(acc[i][j], a_frag[i], b_frag[j]);
      }
    }
  }

 protected:  // TransposedWarpMma (transposed_warp_mma.cuh) multiplies and rounds alike
  // The B fragments of n8 tiles j and j + 1, from the four matrices of one ldmatrix.x4.
  __device__ __forceinline__ static void unpack_pair(const uint32_t (&pair)[4], uint32_t (&b_frag)[kTilesN][2], int j) {
    b_frag[j][0] = pair[0];
    b_frag[j][1] = pair[1];
    b_frag[j + 1][0] = pair[2];
    b_frag[j + 1][1] = pair[3];
  }

  __device__ __forceinline__ static void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    if constexpr (std::is_same_v<T, float>) {
      simt::mma_m16n8k8<simt::MmaOperand::tf32>(d, a, b);
    } else {
      simt::mma_m16n8k16<mma_operand<T>>(d, a, b);
    }
  }

  // float32 operands rounded to TF32 (cvt.rna), as the generation-1 GEMMs round theirs.
  template <int kRegisters>
  __device__ __forceinline__ static void round_operands(uint32_t (&registers)[kRegisters]) {
    if constexpr (std::is_same_v<T, float>) {
#pragma unroll
      for (uint32_t& bits : registers) {
        float value;
        std::memcpy(&value, &bits, sizeof value);
        bits = Tf32(value).bits;
      }
    }
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
