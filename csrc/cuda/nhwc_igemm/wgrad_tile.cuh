// WgradTile: the shape of the weight-gradient GEMM, and its shared-memory layout.
//
// Both operands of wgrad are contiguous along M (dy's output channels) or N (x's input channels),
// not along the GEMM's k (pixels), so a stage holds each tile as kBlockK rows, one per pixel, of
// kBlockM (A) or kBlockN (B) elements: [k][m] and [k][n]. A row is padded by 8 elements, which
// makes every fragment load conflict-free without a swizzle:
//  - half types (ldmatrix.trans, 8 rows of 16 bytes at one column per phase): a 144-byte pitch puts
//    consecutive rows 16 bytes apart modulo 128, on 8 distinct 16-byte bank groups;
//  - TF32 (32-bit scalar loads at rows t, columns g of a quarter-tile): a 72-word pitch is 8 banks
//    modulo 32, so 4 rows x 8 columns meet 32 distinct banks.
// cp.async writes a row's 16-byte chunks from consecutive threads: 128 contiguous bytes per quarter-warp.
// One MMA k-step is 16 pixels (m16n8k16) for float16/bfloat16 and 8 (m16n8k8 in TF32) for float;
// a stage is two k-steps (for IEEE float32 and float64 on CUDA cores, 16 pixels as well).
#pragma once

#include <type_traits>

namespace convkernels::cuda::nhwc_igemm {

// Rows of kPitch elements of T: byte offset of element `element` of row `row`.
template <typename T, int kPitch>
struct PitchedRows {
  __device__ static constexpr int offset(int row, int element) {
    return (row * kPitch + element) * static_cast<int>(sizeof(T));
  }
};

template <typename T, int BlockM, int BlockN, int WarpM, int WarpN, int Stages>
struct WgradTile {
  static constexpr int kBlockM = BlockM, kBlockN = BlockN, kWarpM = WarpM, kWarpN = WarpN;
  static constexpr int kStages = Stages;
  static constexpr int kWarpsM = BlockM / WarpM, kWarpsN = BlockN / WarpN;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr int kMinBlocksPerSm = 2;
  static constexpr int kMmaTilesM = WarpM / 16, kMmaTilesN = WarpN / 8;

  static constexpr int kStepK = sizeof(T) == 2 ? 16 : 8;
  static constexpr int kStepsPerStage = 2;
  static constexpr int kBlockK = kStepK * kStepsPerStage;
  static constexpr int kElementsPerChunk = 16 / static_cast<int>(sizeof(T));

  static constexpr int kPitchA = BlockM + 8, kPitchB = BlockN + 8;  // elements per row
  using RowsA = PitchedRows<T, kPitchA>;
  using RowsB = PitchedRows<T, kPitchB>;
  static constexpr int kTileBytesA = kBlockK * kPitchA * static_cast<int>(sizeof(T));
  static constexpr int kTileBytesB = kBlockK * kPitchB * static_cast<int>(sizeof(T));
  static constexpr int kStageBytes = kTileBytesA + kTileBytesB;
  static constexpr int kMainloopBytes = Stages * kStageBytes;

  static_assert(BlockM % WarpM == 0 && BlockN % WarpN == 0, "warps tile the block");
  static_assert(WarpM % 16 == 0 && WarpN % 16 == 0, "ldmatrix.x4 loads an m16 tile or two n8 tiles");
  static_assert(kTileBytesA % 16 == 0 && kStageBytes % 16 == 0, "16-byte aligned rows and stages");
  static_assert(Stages >= 2, "a pipeline has a stage in flight while one is multiplied");
};

// 64 output channels x 64 channels of one tap, 4 warps of 32x32, 4 stages: 36 KB for every type
// but float64 (72 KB).
template <typename T>
using WgradTile64 = WgradTile<T, 64, 64, 32, 32, 4>;

}  // namespace convkernels::cuda::nhwc_igemm
