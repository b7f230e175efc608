// The shape of a channels_last tensor-core GEMM: block tile, warp tile, pipeline depth, and the
// swizzled layout of the operand tiles in shared memory.
//
// Every operand row (an output pixel of A, an output channel of B) holds kChunksK 16-byte chunks
// of the GEMM's k per stage: 32 half-type or 16 float elements, two MMA k-steps
// (m16n8k16 or m16n8k8-TF32 each take 2 chunks). A stage is the A tile then the B tile.
#pragma once

#include <cstdint>

#include <c10/macros/Macros.h>

namespace convkernels::cuda::nhwc_igemm {

// Byte offset of 16-byte chunk `chunk` (< 4) of row `row` in a tile of 64-byte rows. Two rows
// make a 128-byte line of 8 chunks, and a chunk's place in its line is XORed with the line's
// number mod 8, so that the 8 rows an ldmatrix phase reads (one chunk each) and the 8 chunks a
// quarter-warp of cp.async writes (two rows) each fall on 8 distinct 16-byte bank groups.
C10_HOST_DEVICE constexpr int swizzled_chunk(int row, int chunk) {
  const int line = row / 2;
  const int place = (row % 2 * 4 + chunk) ^ (line % 8);
  return line * 128 + place * 16;
}

template <int BlockM, int BlockN, int WarpM, int WarpN, int Stages>
struct TileShape {
  static constexpr int kBlockM = BlockM, kBlockN = BlockN, kWarpM = WarpM, kWarpN = WarpN;
  static constexpr int kStages = Stages;
  static constexpr int kWarpsM = BlockM / WarpM, kWarpsN = BlockN / WarpN;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  // Blocks per SM that __launch_bounds__ asks registers for: 256 threads' worth, so 255 registers
  // a thread (the tensor-core warp tile's 128 accumulators, CUDA cores' 8x8 lane tiles).
  static constexpr int kMinBlocksPerSm = kThreads < 256 ? 256 / kThreads : 1;
  static constexpr int kMmaTilesM = WarpM / 16, kMmaTilesN = WarpN / 8;  // m16n8 tiles per warp

  static constexpr int kChunksK = 4;
  static constexpr int kRowBytes = 16 * kChunksK;
  static constexpr int kTileBytesA = BlockM * kRowBytes, kTileBytesB = BlockN * kRowBytes;
  static constexpr int kStageBytes = kTileBytesA + kTileBytesB;
  static constexpr int kMainloopBytes = Stages * kStageBytes;

  static_assert(BlockM % WarpM == 0 && BlockN % WarpN == 0, "warps tile the block");
  static_assert(WarpM % 16 == 0 && WarpN % 16 == 0, "B fragments load two n8 tiles per ldmatrix.x4");
  static_assert(Stages >= 2, "a pipeline has a stage in flight while one is multiplied");

  // Where the copies (chunk_copies.cuh) put chunk `chunk` of row `row` of an operand tile.
  C10_HOST_DEVICE static constexpr int chunk_offset(int row, int chunk) { return swizzled_chunk(row, chunk); }
};

// The tiles (conv_kernel.cuh picks one per problem): 128x128 for wide GEMMs, 128x64 where a group
// has at most 64 output channels (48 KB of shared memory each), 64x64 where either tile would
// mostly multiply padding (few output pixels or channels). A tensor-core warp takes 64x64 of the
// wide tile; a CUDA-core warp (8x8 accumulators a lane) 64x32 of either, so its wide tile has 8
// warps. float64 on CUDA cores takes tiles of warps of 32x32 (4x8 lane tiles): its accumulators
// need twice the registers.
using WideTile = TileShape<128, 128, 64, 64, 3>;
using WideCudaCoreTile = TileShape<128, 128, 64, 32, 3>;
using NarrowTile = TileShape<128, 64, 64, 32, 4>;
using Float64Tile = TileShape<128, 64, 32, 32, 4>;
using SmallTile = TileShape<64, 64, 32, 32, 4>;

}  // namespace convkernels::cuda::nhwc_igemm
