// ChunkCopies: which pieces of a stage's operand tile (kTileRows rows of Tile::kRowBytes) a thread
// copies with cp.async: piece tid % kChunksPerRow of rows tid / kChunksPerRow + i * kRowStep.
// A piece is a 16-byte chunk, or where a group's channels are padded to 8 bytes only (a first
// layer's 3 half-type channels: 4, not 8) half of one (kCopyBytes = 8): then a chunk holds two
// filter taps, each piece a tap of its own (filter_tap_cursor.cuh). Consecutive threads copy one
// row's contiguous bytes, so a warp's request covers whole rows, and a quarter-warp of 16-byte
// copies fills one 128-byte line of the swizzled tile (Tile::chunk_offset).
#pragma once

#include <type_traits>

#include "../../simt/cp_async.h"
#include "../../simt/simt.h"
#include "../mma.cuh"

namespace convkernels::cuda::nhwc_igemm {

template <class Tile, typename T, int kTileRows, int kCopyBytes = 16>
struct ChunkCopies {
  static_assert(kCopyBytes == 16 || kCopyBytes == 8, "16-byte chunks or their 8-byte halves");
  static constexpr int kElementsPerChunk = kCopyBytes / static_cast<int>(sizeof(T));
  static constexpr int kChunksPerRow = Tile::kRowBytes / kCopyBytes;
  static constexpr int kRowStep = Tile::kThreads / kChunksPerRow;
  static constexpr int kRows = kTileRows / kRowStep;
  static_assert(kTileRows % kRowStep == 0, "whole rows per thread");
  static_assert(kRows <= 32, "row masks are 32-bit");

  int row, chunk;

  __device__ explicit ChunkCopies(int tid) : row(tid / kChunksPerRow), chunk(tid % kChunksPerRow) {}

  // The thread's first channel within a stage, and its i-th row.
  __device__ int channel() const { return chunk * kElementsPerChunk; }
  __device__ int row_of(int i) const { return row + i * kRowStep; }

  // The thread's pieces of `tile`, landed, rounded to TF32 in place (float32 operands that the
  // tensor cores read from shared memory, which would truncate them).
  __device__ void round_to_tf32(char* tile) const {
    static_assert(std::is_same_v<T, float>, "float32 operands");
#pragma unroll
    for (int i = 0; i < kRows; ++i) round_to_tf32_in_shared<kCopyBytes>(piece(tile, i));
  }

  // Row i's piece of `tile` = kCopyBytes at `source` where `inside`, else zeros (reading nothing,
  // so `source` need only be a valid address).
  __device__ void copy(char* tile, int i, const T* source, bool inside) const {
    char* at = piece(tile, i);
    if constexpr (kCopyBytes == 16) {
      simt::cp_async_cg<16>(at, source, inside ? 16 : 0);
    } else {
      simt::cp_async_ca<kCopyBytes>(at, source, inside ? kCopyBytes : 0);
    }
  }

 private:
  // Where the thread's piece of row i lies in `tile`.
  __device__ char* piece(char* tile, int i) const {
    return tile + Tile::chunk_offset(row_of(i), chunk * kCopyBytes / 16) + chunk * kCopyBytes % 16;
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
