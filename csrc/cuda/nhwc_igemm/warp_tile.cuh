// WarpTile: a warp's kWarpM x kWarpN share of the block's accumulators, in the m16n8 fragment
// layout of mma.sync that both math steps (WarpMma on tensor cores, CudaCoreMma on CUDA cores)
// keep, so that one epilogue serves both: acc[i][j] is tile (i, j), with g = lane / 4 and
// t = lane % 4 the elements (16i + g, 8j + 2t), (16i + g, 8j + 2t + 1), (16i + g + 8, 8j + 2t),
// (16i + g + 8, 8j + 2t + 1) of the warp tile.
#pragma once

#include "tile_shape.cuh"

namespace convkernels::cuda::nhwc_igemm {

template <class Tile, typename Accumulator_>
struct WarpTile {
  using Accumulator = Accumulator_;
  static constexpr int kTilesM = Tile::kMmaTilesM, kTilesN = Tile::kMmaTilesN;

  Accumulator acc[kTilesM][kTilesN][4];
  int m0, n0;  // the warp tile's first row and column in the block tile
  int lane;

  __device__ explicit WarpTile(int tid) : lane(tid % 32) {
    const int warp = tid / 32;
    m0 = warp % Tile::kWarpsM * Tile::kWarpM;
    n0 = warp / Tile::kWarpsM * Tile::kWarpN;
#pragma unroll
    for (int i = 0; i < kTilesM; ++i) {
#pragma unroll
      for (int j = 0; j < kTilesN; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][j][e] = Accumulator(0);
      }
    }
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
