// TransposedCudaCoreMma: TransposedWarpMma's counterpart on CUDA cores, for IEEE float32 (FFMA)
// and float64 (DFMA) weight gradients: the same [k][m] / [k][n] stages (wgrad_tile.cuh) and the
// same accumulator layout (WarpTile), so that one store of the partials serves both.
//
// Per pixel row k of a stage, lane (g, t) reads the 2 * kTilesM elements of its A rows
// (m0 + 16i + 8half + g) and its kTilesN column pairs of B (n0 + 8j + 2t, + 1; one 8- or 16-byte
// load each), and accumulates their 4 * kTilesM * kTilesN products. A quarter-warp's A reads are 8
// consecutive elements (broadcast over t), its B reads 4 consecutive pairs: no bank conflict.
#pragma once

#include <type_traits>

#include "../../simt/simt.h"
#include "packed_groups.cuh"
#include "warp_tile.cuh"

namespace convkernels::cuda::nhwc_igemm {

template <class Tile, typename T>
struct TransposedCudaCoreMma : WarpTile<Tile, T> {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "IEEE float32 or float64");
  using Base = WarpTile<Tile, T>;
  using Base::acc, Base::lane, Base::m0, Base::n0, Base::kTilesM, Base::kTilesN;

  struct alignas(2 * sizeof(T)) Pair {
    T first, second;
  };

  __device__ explicit TransposedCudaCoreMma(int tid) : Base(tid) {}

  // acc += A * B over one stage: `a` is the [k][m] tile, `b` the [k][n] tile; only the halves of
  // m16n8 tiles that `tiles` takes (packed_groups.cuh), and only their rows and columns are loaded.
  template <class Tiles>
  __device__ __forceinline__ void multiply(const char* a, const char* b, const Tiles& tiles) {
    const T* a_tile = reinterpret_cast<const T*>(a);
    const T* b_tile = reinterpret_cast<const T*>(b);
    const int g = lane / 4, t = lane % 4;
    int taken = 0;
#pragma unroll
    for (int i = 0; i < kTilesM; ++i) {
#pragma unroll
      for (int j = 0; j < kTilesN; ++j) taken += tiles.takes_half(i, 0, j) + tiles.takes_half(i, 1, j);
    }
    simt::note_fma<T>(Tile::kBlockK * 2 * taken);
#pragma unroll 2
    for (int k = 0; k < Tile::kBlockK; ++k) {
      T a_rows[kTilesM][2]{};  // loaded only for taken halves (zeros: no read of an unset value)
      Pair b_columns[kTilesN]{};
#pragma unroll
      for (int i = 0; i < kTilesM; ++i) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          if (!tiles.takes_row_half(i, half)) continue;
          a_rows[i][half] = simt::ld_shared(a_tile + k * Tile::kPitchA + m0 + 16 * i + 8 * half + g);
        }
      }
#pragma unroll
      for (int j = 0; j < kTilesN; ++j) {
        if (!tiles.takes_column(j)) continue;
        b_columns[j] = simt::ld_shared(reinterpret_cast<const Pair*>(b_tile + k * Tile::kPitchB + n0 + 8 * j + 2 * t));
      }
#pragma unroll
      for (int i = 0; i < kTilesM; ++i) {
#pragma unroll
        for (int j = 0; j < kTilesN; ++j) {
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            if (!tiles.takes_half(i, half, j)) continue;
            acc[i][j][2 * half] += a_rows[i][half] * b_columns[j].first;
            acc[i][j][2 * half + 1] += a_rows[i][half] * b_columns[j].second;
          }
        }
      }
    }
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
