// The tensor-core math step of the implicit GEMM (implicit_gemm.cuh) for operand type T: float16,
// bfloat16, or TF32 for float32 where torch allows it. Each warp multiplies its part of the block
// tile with mma.m16n8k8 (mma.cuh), accumulating in float.
//
// A thread keeps the kThreadM x kThreadN accumulators that the tile shape gives it on CUDA cores,
// so a warp owns a (8*kThreadM) x (4*kThreadN) warp tile: kThreadM/2 x kThreadN/2 MMA tiles of
// 16 x 8 (WideTile: 64 x 16 per warp, 2 x 4 warps; NarrowTile: 32 x 16, 2 x 1 warps).
// c[i][j] is element (i % 2 * 8 + g, j % 2 + 2t) of MMA tile (i / 2, j / 2), g = lane / 4 and
// t = lane % 4: the epilogues read it through m(i) and n(j) as on the CUDA-core path.
//
// Shared tiles hold T (rounded when stored) with each register's kPack k in one word, so a word is
// a fragment register: for the MMA at k0, slot s of A's MMA tile i is word
// (k0/kPack + t + 4s, m = 16i + g) for row g and (..., 16i + g + 8) for row g+8, and slot s of B's
// tile j is word (k0/kPack + t + 4s, n = 8j + g). Rows of words padded to 8 (mod 32) put the
// 4 t x 8 g words that a warp reads at once in 32 distinct banks.
#pragma once

#include <cstdint>

#include "../simt/simt.h"
#include "mma.cuh"
#include "operand_tile.cuh"

namespace convkernels::cuda {

template <class Tile_, typename T>
struct TensorCoreAccumulators {
  using Tile = Tile_;
  using acc_t = float;
  using Fragment = MmaFragment<T>;
  template <int kExtent>
  using SharedTile = SharedOperandTile<T, Fragment::kPack, 8, Tile::kBlockK, kExtent>;

  static constexpr int kMmaTilesM = Tile::kThreadM / 2, kMmaTilesN = Tile::kThreadN / 2;
  static constexpr int kWarpM = 16 * kMmaTilesM, kWarpN = 8 * kMmaTilesN;
  static constexpr int kWarpsM = Tile::kBlockM / kWarpM;
  static_assert(Tile::kBlockM % kWarpM == 0 && Tile::kBlockN % kWarpN == 0 &&
                    kWarpsM * (Tile::kBlockN / kWarpN) * 32 == Tile::kThreads,
                "the warps tile the block");
  static_assert(Tile::kBlockK % 8 == 0, "whole MMAs along k");
  static_assert(((Tile::kBlockM + 8) % 32 == 8 || (Tile::kBlockM + 8) % 32 == 24) &&
                    ((Tile::kBlockN + 8) % 32 == 8 || (Tile::kBlockN + 8) % 32 == 24),
                "padded rows keep a warp's fragment reads in distinct banks");

  acc_t c[Tile::kThreadM][Tile::kThreadN];
  int m_g;   // the warp tile's first row plus g: the lane's rows of A and C
  int n0;    // the warp tile's first column
  int g, t;  // the lane's place in the fragments

  __device__ explicit TensorCoreAccumulators(int tid) {
    const int warp = tid / 32, lane = tid % 32;
    g = lane / 4;
    t = lane % 4;
    m_g = warp % kWarpsM * kWarpM + g;
    n0 = warp / kWarpsM * kWarpN;
#pragma unroll
    for (int i = 0; i < Tile::kThreadM; ++i) {
#pragma unroll
      for (int j = 0; j < Tile::kThreadN; ++j) c[i][j] = acc_t(0);
    }
  }
  __device__ int m(int i) const { return m_g + i / 2 * 16 + i % 2 * 8; }
  __device__ int n(int j) const { return n0 + j / 2 * 8 + 2 * t + j % 2; }

  // C += A * B for one kBlockK slice held in shared memory.
  template <class TileA, class TileB>
  __device__ __forceinline__ void multiply(const TileA& a, const TileB& b) {
#pragma unroll
    for (int k0 = 0; k0 < Tile::kBlockK; k0 += 8) {
      uint32_t a_frag[kMmaTilesM][Fragment::kRegistersA], b_frag[kMmaTilesN][Fragment::kRegistersB];
#pragma unroll
      for (int s = 0; s < Fragment::kSlots; ++s) {
        const int row = k0 / Fragment::kPack + t + 4 * s;
#pragma unroll
        for (int i = 0; i < kMmaTilesM; ++i) {
          a_frag[i][2 * s] = a.word(row, m_g + 16 * i);
          a_frag[i][2 * s + 1] = a.word(row, m_g + 16 * i + 8);
        }
#pragma unroll
        for (int j = 0; j < kMmaTilesN; ++j) b_frag[j][s] = b.word(row, n0 + 8 * j + g);
      }
#pragma unroll
      for (int i = 0; i < kMmaTilesM; ++i) {
#pragma unroll
        for (int j = 0; j < kMmaTilesN; ++j) {
          float d[4] = {c[2 * i][2 * j], c[2 * i][2 * j + 1], c[2 * i + 1][2 * j],
                        c[2 * i + 1][2 * j + 1]};
          mma_m16n8k8<T>(d, a_frag[i], b_frag[j]);
          c[2 * i][2 * j] = d[0];
          c[2 * i][2 * j + 1] = d[1];
          c[2 * i + 1][2 * j] = d[2];
          c[2 * i + 1][2 * j + 1] = d[3];
        }
      }
    }
  }
};

}  // namespace convkernels::cuda
