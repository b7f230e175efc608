// TransposedWarpMma: WarpMma's accumulators and multiply-accumulate for operands staged as [k][m]
// and [k][n] (wgrad_tile.cuh), i.e. contiguous along M and N instead of along the GEMM's k.
//
// float16/bfloat16: ldmatrix.x4.trans gives the m16n8k16 fragments straight from the k-major rows:
// matrix i of an m16 tile of A is rows k0 + 8(i / 2) .. +7 at column m0 + 8(i % 2), and of a pair
// of n8 tiles of B rows k0 + 8(i % 2) .. +7 at column n0 + 8(i / 2); .trans hands lane (g, t) the
// elements at column g and rows 2t, 2t + 1, which is the row-major A / column-major B fragment.
// TF32: ldmatrix.trans moves 16-bit halves, so 32-bit elements cannot use it; each lane loads its
// four A and two B elements with plain 32-bit shared loads (rows t and t + 4, columns g and g + 8),
// which the tile's 72-word pitch keeps free of bank conflicts, then rounds them to TF32 (or splits
// them, for 3xTF32, as WarpMma does).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../../simt/ldmatrix.h"
#include "../../simt/simt.h"
#include "packed_groups.cuh"
#include "warp_mma.cuh"

namespace convkernels::cuda::nhwc_igemm {

template <class Tile, typename T, bool kThreeTf32 = false>
struct TransposedWarpMma : WarpMma<Tile, T, kThreeTf32> {
  using Base = WarpMma<Tile, T, kThreeTf32>;
  template <int kRegisters>
  using Fragment = typename Base::template Fragment<kRegisters>;
  using Base::acc, Base::lane, Base::m0, Base::n0;
  static constexpr int kTilesM = Tile::kMmaTilesM, kTilesN = Tile::kMmaTilesN;

  __device__ explicit TransposedWarpMma(int tid) : Base(tid) {}

  // acc += A * B over one stage: `a` is the [k][m] tile, `b` the [k][n] tile; only the m16n8 tiles
  // `tiles` takes (packed_groups.cuh), and only their fragments are loaded.
  template <class Tiles>
  __device__ __forceinline__ void multiply(const char* a, const char* b, const Tiles& tiles) {
    const T* a_tile = reinterpret_cast<const T*>(a);
    const T* b_tile = reinterpret_cast<const T*>(b);
#pragma unroll
    for (int step = 0; step < Tile::kStepsPerStage; ++step) {
      const int k0 = step * Tile::kStepK;
      Fragment<4> a_frag[kTilesM]{};  // loaded only for taken tiles (zeros: no read of an unset value)
      Fragment<2> b_frag[kTilesN]{};
      if constexpr (std::is_same_v<T, float>) {
        const int g = lane / 4, t = lane % 4;
        const auto element = [](const float* at) {
          const float value = simt::ld_shared(at);
          uint32_t bits;
          std::memcpy(&bits, &value, sizeof bits);
          return bits;
        };
#pragma unroll
        for (int i = 0; i < kTilesM; ++i) {
          if (!tiles.takes_row(i)) continue;
          const float* at = a_tile + (k0 + t) * Tile::kPitchA + m0 + 16 * i + g;
          a_frag[i] = Base::template operand<4>(
              {element(at), element(at + 8), element(at + 4 * Tile::kPitchA), element(at + 4 * Tile::kPitchA + 8)});
        }
#pragma unroll
        for (int j = 0; j < kTilesN; ++j) {
          if (!tiles.takes_column(j)) continue;
          const float* at = b_tile + (k0 + t) * Tile::kPitchB + n0 + 8 * j + g;
          b_frag[j] = Base::template operand<2>({element(at), element(at + 4 * Tile::kPitchB)});
        }
      } else {
#pragma unroll
        for (int i = 0; i < kTilesM; ++i) {
          if (!tiles.takes_row(i)) continue;
          const int row = k0 + lane / 16 * 8 + lane % 8, column = m0 + 16 * i + lane / 8 % 2 * 8;
          uint32_t rows[4];
          simt::ldmatrix_trans<4>(rows, a_tile + row * Tile::kPitchA + column);
          a_frag[i] = Base::operand(rows);
        }
#pragma unroll
        for (int j = 0; j < kTilesN; j += 2) {
          if (!tiles.takes_column(j) && !tiles.takes_column(j + 1)) continue;
          const int row = k0 + lane / 8 % 2 * 8 + lane % 8, column = n0 + 8 * j + lane / 16 * 8;
          uint32_t pair[4];
          simt::ldmatrix_trans<4>(pair, b_tile + row * Tile::kPitchB + column);
          b_frag[j] = Base::template operand<2>({pair[0], pair[1]});
          b_frag[j + 1] = Base::template operand<2>({pair[2], pair[3]});
        }
      }
#pragma unroll
      for (int i = 0; i < kTilesM; ++i) {
#pragma unroll
        for (int j = 0; j < kTilesN; ++j) {
          if (tiles.takes(i, j)) Base::mma(acc[i][j], a_frag[i], b_frag[j]);
        }
      }
    }
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
