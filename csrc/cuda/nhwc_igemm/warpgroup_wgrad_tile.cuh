// WarpgroupWgradTile: the weight-gradient GEMM (wgrad_problem.cuh) for wgmma (sm_90a,
// warpgroup_mma.cuh) in float16 and bfloat16: one warpgroup, a 64 x 64 block tile and 32 pixels a
// stage (two k16 steps), as WgradTile64 has, so the split plan is the same.
//
// The [k][m] and [k][n] tiles (wgrad_tile.cuh) are wgmma's MN-major operands with the 128-byte
// swizzle: a pixel's 64 elements are one 128-byte row, its chunk c in place c ^ (k % 8), 8 rows a
// 1024-byte pattern (the stride byte offset), the second k16 step 16 rows on. The tile is one
// pattern wide, so the leading byte offset is unused. A quarter-warp's cp.async fills one row: no
// bank conflict. TF32 operands must be K-major: float32 keeps the mma.sync kernel.
#pragma once

#include <c10/macros/Macros.h>

#include "../../simt/hopper/wgmma.h"

namespace convkernels::cuda::nhwc_igemm {

template <typename T>
struct WarpgroupWgradTile {
  static_assert(sizeof(T) == 2, "float16 or bfloat16: wgmma reads TF32 operands K-major only");
  static constexpr int kWarpgroups = 1;
  static constexpr int kBlockM = 64, kBlockN = 64, kStages = 4;
  static constexpr int kWarpM = 16, kWarpN = kBlockN;  // for store_partials: warp w has rows 16w..
  static constexpr int kWarpsM = 4, kWarpsN = 1;
  static constexpr int kThreads = 128;
  static constexpr int kMmaTilesM = 1, kMmaTilesN = kBlockN / 8;

  static constexpr int kStepK = 16, kStepsPerStage = 2, kBlockK = kStepK * kStepsPerStage;
  static constexpr int kElementsPerChunk = 8;
  static constexpr int kRowBytes = 128;
  static constexpr int kTileBytesA = kBlockK * kRowBytes, kTileBytesB = kBlockK * kRowBytes;
  static constexpr int kStageBytes = kTileBytesA + kTileBytesB;
  static constexpr int kMainloopBytes = kStages * kStageBytes;

  // How WarpgroupMma reads the stage.
  static constexpr simt::WgmmaMajor kMajor = simt::WgmmaMajor::mn;
  static constexpr simt::WgmmaSwizzle kSwizzle = simt::WgmmaSwizzle::b128;
  static constexpr int kSwizzleBytes = 8 * kRowBytes;
  C10_HOST_DEVICE static constexpr int a_offset(int /*warpgroup*/, int step) { return step * kStepK * kRowBytes; }
  C10_HOST_DEVICE static constexpr int b_offset(int step) { return step * kStepK * kRowBytes; }

  struct Rows {
    __device__ static constexpr int offset(int row, int element) {
      return row * kRowBytes + (element / kElementsPerChunk ^ row % 8) * 16;
    }
  };
  using RowsA = Rows;
  using RowsB = Rows;
};

}  // namespace convkernels::cuda::nhwc_igemm
