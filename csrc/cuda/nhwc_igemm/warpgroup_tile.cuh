// The shape of a channels_last GEMM whose warpgroups multiply with wgmma (sm_90a, warpgroup_mma.cuh):
// a block of kWarpgroups x 64 rows by kBlockN columns, each warpgroup's 64 rows by all kBlockN
// columns one m64nNk16 accumulation (m64nNk8 in TF32), in kStages shared stages.
//
// A stage holds the same 64 bytes of k per operand row as TileShape's (four 16-byte chunks), so the
// iterators and the pipeline are TileShape's; only the layout differs: wgmma's K-major operand
// layout with the 64-byte swizzle, row r at r * 64 bytes with its chunk c in place c ^ (r / 2 % 4)
// (an 8-row pattern every 512 bytes, which the hardware reads by the shared-memory address: tiles
// and stages start on 512-byte boundaries). A quarter-warp's cp.async writes two whole rows, one
// 128-byte line, so the copies are free of bank conflicts as TileShape's are.
//
// For the epilogue (epilogue.cuh, warp_tile.cuh) warp w of the block holds rows 16w to 16w + 15 and
// every column: the wgmma accumulator layout is that of kBlockN / 8 m16n8 tiles of mma.sync.
#pragma once

#include <c10/macros/Macros.h>

#include "../../simt/hopper/wgmma.h"

namespace convkernels::cuda::nhwc_igemm {

template <int Warpgroups, int BlockN, int Stages>
struct WarpgroupTileShape {
  static constexpr int kWarpgroups = Warpgroups;
  static constexpr int kBlockM = 64 * Warpgroups, kBlockN = BlockN, kStages = Stages;
  static constexpr int kWarpM = 16, kWarpN = BlockN;
  static constexpr int kWarpsM = 4 * Warpgroups, kWarpsN = 1;
  static constexpr int kThreads = 128 * Warpgroups;
  // Two blocks of 256 threads an SM: 128 registers a thread, for the 64 accumulators of n128.
  static constexpr int kMinBlocksPerSm = 512 / kThreads;
  static constexpr int kMmaTilesM = 1, kMmaTilesN = BlockN / 8;

  static constexpr int kChunksK = 4;
  static constexpr int kRowBytes = 16 * kChunksK;
  static constexpr int kTileBytesA = kBlockM * kRowBytes, kTileBytesB = BlockN * kRowBytes;
  static constexpr int kStageBytes = kTileBytesA + kTileBytesB;
  static constexpr int kMainloopBytes = Stages * kStageBytes;

  // How WarpgroupMma reads the stage: K-major rows, 8-row patterns kSwizzleBytes apart (the stride
  // byte offset), each step 32 bytes of k further into the rows.
  static constexpr simt::WgmmaMajor kMajor = simt::WgmmaMajor::k;
  static constexpr simt::WgmmaSwizzle kSwizzle = simt::WgmmaSwizzle::b64;
  static constexpr int kSwizzleBytes = 8 * kRowBytes;
  static constexpr int kLeadingBytes = 16;  // unused by K-major swizzled layouts
  static constexpr int kStepsPerStage = kRowBytes / 32;
  C10_HOST_DEVICE static constexpr int a_offset(int warpgroup, int step) { return warpgroup * 64 * kRowBytes + step * 32; }
  C10_HOST_DEVICE static constexpr int b_offset(int step) { return step * 32; }

  static_assert(BlockN % 64 == 0 && BlockN <= 256, "wgmma's n, in whole rows of the cp.async copies");
  static_assert(kTileBytesA % kSwizzleBytes == 0 && kStageBytes % kSwizzleBytes == 0, "patterns stay aligned");
  static_assert(Stages >= 3, "a stage being copied, one multiplied, one still read by the wgmma in flight");

  C10_HOST_DEVICE static constexpr int chunk_offset(int row, int chunk) {
    return row * kRowBytes + (chunk ^ (row / 2 % 4)) * 16;
  }
};

// 128x128 for wide GEMMs (five stages: the epilogue stages 128 float rows of 136 in them), 128x64
// where a group has at most 64 output channels, one warpgroup's 64x64 for small GEMMs.
using WarpgroupWideTile = WarpgroupTileShape<2, 128, 5>;
using WarpgroupNarrowTile = WarpgroupTileShape<2, 64, 4>;
using WarpgroupSmallTile = WarpgroupTileShape<1, 64, 4>;

}  // namespace convkernels::cuda::nhwc_igemm
