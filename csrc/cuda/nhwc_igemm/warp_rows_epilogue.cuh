// The epilogue of the TMA implicit GEMM (tma_conv_kernel.cuh): each warp stores its own 16 rows
// of the tile (WarpTile's layout: warp w holds rows 16w to 16w + 15 and every column) through a
// shared-memory slice of its own, so no barrier spans warps, and the producer, already
// copying the next tile's stages, never waits for it.
//
// Like Epilogue's (epilogue.cuh): accumulators plus bias, converted to T, staged as rows padded by
// 8 elements (the fragments' pair stores fall in distinct banks), then copied out as 16-byte
// pieces, consecutive lanes on consecutive pieces of a row. A row's pixel comes from the tile's
// PixelBox (rows past the output are not stored).
#pragma once

#include <cstdint>

#include "../../simt/simt.h"
#include "epilogue.cuh"
#include "pixel_tile.cuh"
#include "problem.cuh"

namespace convkernels::cuda::nhwc_igemm {

// A warp's slice: 16 rows of kBlockN elements at a pitch of kBlockN + 8.
template <int BlockN, typename T>
struct WarpRows {
  static constexpr int kPitch = BlockN + 8;
  static constexpr int kBytes = 16 * kPitch * static_cast<int>(sizeof(T));
};

template <class Tile, typename T, class Mma>
__device__ void store_warp_rows(const NhwcConvProblem& p, const Mma& mma, const PixelBox& pixels, const T* bias,
                                T* out, int group, int n0, T* staged) {
  using Accumulator = typename Mma::Accumulator;
  constexpr int kPitch = WarpRows<Tile::kBlockN, T>::kPitch;
  constexpr int kElements = OutputPieces<T>::kElements, kPiecesPerRow = Tile::kBlockN / kElements;
  struct alignas(2 * sizeof(T)) Pair {
    T first, second;
  };
  static_assert(Tile::kMmaTilesM == 1, "a warp's 16 rows");
  const int g = mma.lane / 4, t = mma.lane % 4;
#pragma unroll
  for (int j = 0; j < Tile::kMmaTilesN; ++j) {
    // Loaded a tile at a time, not all first: a 256-column tile's bias would take 64 registers.
    const int n = n0 + mma.n0 + 8 * j + 2 * t;
    const Accumulator bias_of[2] = {column_bias<Accumulator>(p, bias, group, n),
                                    column_bias<Accumulator>(p, bias, group, n + 1)};
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const Pair pair{static_cast<T>(mma.acc[0][j][2 * half] + bias_of[0]),
                      static_cast<T>(mma.acc[0][j][2 * half + 1] + bias_of[1])};
      simt::st_shared(reinterpret_cast<Pair*>(staged + (g + 8 * half) * kPitch + mma.n0 + 8 * j + 2 * t), pair);
    }
  }
  // Lane l finds the output pixel of row l % 16 (its divisions once, not once a piece); the copy
  // takes each row's from that lane.
  const int64_t row_pixel = pixels.output_pixel(p, mma.m0 + mma.lane % 16);
  __syncwarp();
  const OutputPieces<T> pieces(p);
  static_assert(16 * kPiecesPerRow % 32 == 0, "every lane takes part in every shuffle");
  if (!copies_values<Tile> || pieces.vectors) {
    for (int v = mma.lane; v < 16 * kPiecesPerRow; v += 32) {
      const int row = v / kPiecesPerRow, column = v % kPiecesPerRow * kElements;
      const int n = n0 + column;
      const int64_t pixel = __shfl_sync(0xffffffffu, row_pixel, row);
      if (n < p.k_per_group && pixel >= 0) pieces.store(p, group, pixel, n, staged + row * kPitch + column, out);
    }
  } else {
    // A lane a value (epilogue.cuh's Epilogue): consecutive banks, consecutive channels stored together.
#pragma unroll 1
    for (int v = mma.lane; v < 16 * Tile::kBlockN; v += 32) {
      const simt::LoopTrip named(v / 32);  // lanes past the group's columns skip some trips' copies
      const int row = v / Tile::kBlockN, column = v % Tile::kBlockN;
      const int n = n0 + column;
      const int64_t pixel = __shfl_sync(0xffffffffu, row_pixel, row);
      if (n < p.k_per_group && pixel >= 0) {
        pieces.store_element(p, group, pixel, n, simt::ld_shared(staged + row * kPitch + column), out);
      }
    }
  }
  __syncwarp();  // the slice is free for the next tile's rows
}

}  // namespace convkernels::cuda::nhwc_igemm
