// CudaCoreMma: a warp's tile of the block's accumulators (WarpTile, the layout WarpMma keeps) and
// one stage's multiply on CUDA cores, for IEEE float32 (FFMA) and float64 (DFMA), from the same
// swizzled stages.
//
// Per 16-byte chunk of k, a lane reads its 2 * kTilesN B rows (packed groups: of the n8 tiles
// that take the chunk) and then, one at a time, its 2 * kTilesM A rows as 16-byte vectors, each
// A vector feeding 2 * kTilesN * kElementsPerChunk FMAs (an 8x8 lane tile: 16 FMAs per 16-byte
// shared load). A quarter-warp's lanes read 2 A rows (broadcast within a row) or 4 B rows of one
// chunk, in distinct banks by the swizzle.
#pragma once

#include <type_traits>

#include "../../simt/simt.h"
#include "packed_groups.cuh"
#include "tile_shape.cuh"
#include "warp_tile.cuh"

namespace convkernels::cuda::nhwc_igemm {

template <class Tile, typename T>
struct CudaCoreMma : WarpTile<Tile, T> {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "IEEE float32 or float64");
  using Base = WarpTile<Tile, T>;
  using Base::acc, Base::lane, Base::m0, Base::n0, Base::kTilesM, Base::kTilesN;
  static constexpr int kElementsPerChunk = 16 / sizeof(T);

  struct alignas(16) Vector {
    T k[kElementsPerChunk];
  };

  __device__ explicit CudaCoreMma(int tid) : Base(tid) {}

  // acc += A * B over one stage: `a` and `b` are the stage's swizzled shared tiles, of which each
  // n8 tile takes the chunks `chunks` gives it (packed_groups.cuh).
  template <class Chunks = EveryChunk>
  __device__ __forceinline__ void multiply(const char* a, const char* b, const Chunks& chunks = {}) {
    const int g = lane / 4, t = lane % 4;
    // Not unrolled: hoisting the next chunk's loads would need another 8 B vectors of registers.
#pragma unroll 1
    for (int chunk = 0; chunk < Tile::kChunksK; ++chunk) {
      bool takes[kTilesN];
      int tiles = 0;
#pragma unroll
      for (int j = 0; j < kTilesN; ++j) {
        takes[j] = chunks.takes(j, chunk * kElementsPerChunk);
        tiles += takes[j];
      }
      if (tiles == 0) continue;
      simt::note_fma<T>(kElementsPerChunk * 4 * kTilesM * tiles);
      Vector b_rows[kTilesN][2]{};  // loaded only for the tiles that take the chunk
#pragma unroll
      for (int j = 0; j < kTilesN; ++j) {
        if (!takes[j]) continue;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          b_rows[j][e] = simt::ld_shared(
              reinterpret_cast<const Vector*>(b + swizzled_chunk(n0 + 8 * j + 2 * t + e, chunk)));
        }
      }
#pragma unroll
      for (int i = 0; i < kTilesM; ++i) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const Vector a_row = simt::ld_shared(
              reinterpret_cast<const Vector*>(a + swizzled_chunk(m0 + 16 * i + g + 8 * half, chunk)));
#pragma unroll
          for (int k = 0; k < kElementsPerChunk; ++k) {
#pragma unroll
            for (int j = 0; j < kTilesN; ++j) {
              if (!takes[j]) continue;
#pragma unroll
              for (int e = 0; e < 2; ++e) acc[i][j][2 * half + e] += a_row.k[k] * b_rows[j][e].k[k];
            }
          }
        }
      }
    }
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
