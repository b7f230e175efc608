// WarpgroupWgradTile: the weight-gradient GEMM (wgrad_problem.cuh) for wgmma (sm_90a,
// warpgroup_mma.cuh) in float16 and bfloat16: one or two warpgroups, each 64 output channels
// (rows) by BlockN (64 or 128) columns of (tap, channel), so each pixel row a stage holds of dy or
// of x feeds up to twice the products of a 64 x 64 tile, and 32 pixels a stage (two k16 steps).
//
// The [k][m] and [k][n] tiles (wgrad_tile.cuh) are wgmma's MN-major operands with the 128-byte
// swizzle, in atoms of 64 elements (one 128-byte row a pixel, its chunk c in place c ^ (k % 8), 8
// rows a 1024-byte pattern: the stride byte offset), the second k16 step 16 rows on; a tile wider
// than 64 elements is BlockN / 64 atoms of all kBlockK rows, kAtomBytes apart (the leading byte
// offset). A quarter-warp's cp.async fills one row of an atom: no bank conflict. TF32 operands
// must be K-major: float32 keeps the mma.sync kernel.
#pragma once

#include <c10/macros/Macros.h>

#include "../../simt/hopper/wgmma.h"

namespace convkernels::cuda::nhwc_igemm {

template <typename T, int BlockN = 64, int Warpgroups = 1>
struct WarpgroupWgradTile {
  static_assert(sizeof(T) == 2, "float16 or bfloat16: wgmma reads TF32 operands K-major only");
  static_assert(BlockN % 64 == 0 && BlockN <= 256, "whole atoms, wgmma's n at most 256");
  static constexpr int kWarpgroups = Warpgroups;
  static constexpr int kBlockM = 64 * Warpgroups, kBlockN = BlockN, kStages = 4;
  static constexpr int kWarpM = 16, kWarpN = kBlockN;  // for store_partials: warp w has rows 16w..
  static constexpr int kWarpsM = 4 * Warpgroups, kWarpsN = 1;
  static constexpr int kThreads = 128 * Warpgroups;
  static constexpr int kMinBlocksPerSm = Warpgroups == 1 ? 2 : 1;  // up to 255 registers for 2 warpgroups
  static constexpr int kMmaTilesM = 1, kMmaTilesN = kBlockN / 8;

  static constexpr int kStepK = 16, kStepsPerStage = 2, kBlockK = kStepK * kStepsPerStage;
  static constexpr int kElementsPerChunk = 8;
  static constexpr int kRowBytes = 128, kAtomElements = 64;
  static constexpr int kAtomBytes = kBlockK * kRowBytes;
  static constexpr int kTileBytesA = kBlockM / kAtomElements * kAtomBytes;
  static constexpr int kTileBytesB = kBlockN / kAtomElements * kAtomBytes;
  static constexpr int kStageBytes = kTileBytesA + kTileBytesB;
  static constexpr int kMainloopBytes = kStages * kStageBytes;

  // How WarpgroupMma reads the stage.
  static constexpr simt::WgmmaMajor kMajor = simt::WgmmaMajor::mn;
  static constexpr simt::WgmmaSwizzle kSwizzle = simt::WgmmaSwizzle::b128;
  static constexpr int kSwizzleBytes = 8 * kRowBytes, kLeadingBytes = kAtomBytes;
  // Warpgroup w multiplies the A tile's atom w: dy's output channels 64w to 64w + 63.
  C10_HOST_DEVICE static constexpr int a_offset(int warpgroup, int step) {
    return warpgroup * kAtomBytes + step * kStepK * kRowBytes;
  }
  C10_HOST_DEVICE static constexpr int b_offset(int step) { return step * kStepK * kRowBytes; }

  struct Rows {
    __device__ static constexpr int offset(int row, int element) {
      const int atom = element / kAtomElements, chunk = element % kAtomElements / kElementsPerChunk;
      return atom * kAtomBytes + row * kRowBytes + (chunk ^ row % 8) * 16;
    }
  };
  using RowsA = Rows;
  using RowsB = Rows;
};

}  // namespace convkernels::cuda::nhwc_igemm
