// ChunkCopies: which 16-byte chunks of a stage's operand tile (kTileRows rows of kChunksK chunks)
// a thread copies with cp.async: chunk tid % kChunksK of rows tid / kChunksK + i * kRowStep. Four
// consecutive threads copy one row's 64 contiguous bytes, so a warp's request covers 8 rows of
// 2 sectors each, and a quarter-warp fills one 128-byte line of the swizzled tile.
#pragma once

#include "../../simt/cp_async.h"
#include "tile_shape.cuh"

namespace convkernels::cuda::nhwc_igemm {

template <class Tile, typename T, int kTileRows>
struct ChunkCopies {
  static constexpr int kElementsPerChunk = 16 / sizeof(T);
  static constexpr int kRowStep = Tile::kThreads / Tile::kChunksK;
  static constexpr int kRows = kTileRows / kRowStep;
  static_assert(kTileRows % kRowStep == 0, "whole rows per thread");
  static_assert(kRows <= 32, "row masks are 32-bit");

  int row, chunk;

  __device__ explicit ChunkCopies(int tid) : row(tid / Tile::kChunksK), chunk(tid % Tile::kChunksK) {}

  // The thread's first channel within a stage, and its i-th row.
  __device__ int channel() const { return chunk * kElementsPerChunk; }
  __device__ int row_of(int i) const { return row + i * kRowStep; }

  // Row i's chunk of `tile` = 16 bytes at `source` where `inside`, else zeros (reading nothing, so
  // `source` need only be a valid address).
  __device__ void copy(char* tile, int i, const T* source, bool inside) const {
    simt::cp_async_cg<16>(tile + Tile::chunk_offset(row_of(i), chunk), source, inside ? 16 : 0);
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
