// Which 16-byte chunks of a stage's k a warp's n8 tile multiplies. Unpacked (EveryChunk), all of
// them. Where a GEMM group packs several convolution groups (NhwcConvProblem::packed), only the
// chunks that hold channels of the tile's own group (OwnGroupChunks): the block-diagonal filters
// hold zeros across groups, and 0 x Inf would put NaN into another group's outputs where torch
// keeps them apart. The warp's math skips a k-step no chunk of which is the tile's and zeroes the
// fragment half of a k-step that straddles two groups; chunks past a group's channels hold zeros
// (the relayout's padding), so they are never Inf. Where groups share a chunk (half-type groups of
// 2 or 4 channels, unpadded: GroupPacking::sharing_chunks), the warp also zeroes each lane's A
// values of channels that are not the tile's group's (owns).
//
// The weight gradient (wgrad_problem.cuh) multiplies pixels, not channels, so its products never
// cross groups; there a packed GEMM group's wanted outputs are the (row, column) pairs of one
// convolution group, and a warp skips the m16n8 tiles (on CUDA cores their halves) that hold none
// (DiagonalTiles; EveryTile unpacked).
#pragma once

#include <cstdint>

#include "problem.cuh"
#include "wgrad_problem.cuh"

namespace convkernels::cuda::nhwc_igemm {

// Whether a chunk of `chunk` channels that starts `offset` channels past a convolution group's
// first one holds one of the group's `channels`.
__device__ __forceinline__ bool chunk_meets_group(int offset, int channels, int chunk) {
  return static_cast<unsigned>(offset + chunk - 1) < static_cast<unsigned>(channels + chunk - 1);
}

struct EveryChunk {
  static constexpr bool kEvery = true;
  __device__ EveryChunk at_stage(int) const { return *this; }
  __device__ bool takes(int, int) const { return true; }
};

template <int kTilesN, int kElementsPerChunk>
struct OwnGroupChunks {
  static constexpr bool kEvery = false;
  int first[kTilesN];  // the first channel (of the GEMM group's k) of n8 tile j's convolution group
  int channels;        // a convolution group's channels (packed_c)
  int stage = 0;       // the first channel of the stage being multiplied

  // `n0`: the warp's first column in the GEMM group. Packed columns come in whole n8 tiles.
  __device__ OwnGroupChunks(const NhwcConvProblem& p, int n0) : channels(p.packed_c) {
#pragma unroll
    for (int j = 0; j < kTilesN; ++j) first[j] = (n0 + 8 * j) / p.packed_k * p.packed_c;
  }

  __device__ OwnGroupChunks at_stage(int c) const {
    OwnGroupChunks at = *this;
    at.stage = c;
    return at;
  }
  // Whether n8 tile j multiplies the chunk that starts at `channel` of the stage: whether the
  // chunk holds a channel of the tile's group.
  __device__ bool takes(int j, int channel) const {
    return chunk_meets_group(stage + channel - first[j], channels, kElementsPerChunk);
  }
  // Whether groups share chunks, so that a taken chunk may hold other groups' channels too.
  __device__ bool shares_chunks() const { return channels < kElementsPerChunk; }
  // Whether `channel` of the stage is one of n8 tile j's group.
  __device__ bool owns(int j, int channel) const {
    return static_cast<unsigned>(stage + channel - first[j]) < static_cast<unsigned>(channels);
  }
};

struct EveryTile {
  __device__ EveryTile(const NhwcWgradProblem&, int, int) {}
  __device__ bool takes(int, int) const { return true; }
  __device__ bool takes_half(int, int, int) const { return true; }
  __device__ bool takes_row(int) const { return true; }
  __device__ bool takes_row_half(int, int) const { return true; }
  __device__ bool takes_column(int) const { return true; }
};

// Per half of each m16n8 tile (its rows 8 * half to 8 * half + 7): a warp on tensor cores skips
// whole tiles, one on CUDA cores halves, whose rows a lane's accumulators keep apart (WarpTile's
// layout): where a group has 8 outputs, half of every taken tile.
template <int kTilesM, int kTilesN>
struct DiagonalTiles {
  static_assert(2 * kTilesM * kTilesN <= 32, "a bit per half tile");
  // Bit (2i + half) * kTilesN + j: half `half` of m16n8 tile (i, j) holds a pair of one
  // convolution group.
  uint32_t taken = 0;

  // `m0`, `n0`: the warp's first row and column in the GEMM group. The host packs at most 32
  // groups (64 rows of 2 or more).
  __device__ DiagonalTiles(const NhwcWgradProblem& p, int m0, int n0) {
    const int rows = p.packed * p.packed_k, taps = p.R * p.S;
    uint32_t column_groups[kTilesN];  // bit g: a column of n8 tile j is one of group g's
#pragma unroll
    for (int j = 0; j < kTilesN; ++j) {
      column_groups[j] = 0;
      for (int e = 0; e < 8; ++e) {
        const int n = n0 + 8 * j + e, tap = n / p.c_per_group;
        if (tap < taps) column_groups[j] |= 1u << (n - tap * p.c_per_group) / p.packed_c;
      }
    }
#pragma unroll
    for (int half_row = 0; half_row < 2 * kTilesM; ++half_row) {
      const int first = m0 + 8 * half_row, last = first + 7 < rows ? first + 7 : rows - 1;
      // Groups first / packed_k .. last / packed_k (none past the GEMM's rows).
      const uint32_t row_groups =
          first < rows ? (2u << last / p.packed_k) - (1u << first / p.packed_k) : 0u;
#pragma unroll
      for (int j = 0; j < kTilesN; ++j) {
        if (row_groups & column_groups[j]) taken |= 1u << (half_row * kTilesN + j);
      }
    }
  }

  __device__ bool takes_half(int i, int half, int j) const { return taken >> ((2 * i + half) * kTilesN + j) & 1; }
  __device__ bool takes(int i, int j) const { return takes_half(i, 0, j) || takes_half(i, 1, j); }
  __device__ bool takes_row_half(int i, int half) const {
    return taken >> ((2 * i + half) * kTilesN) & ((1u << kTilesN) - 1);
  }
  __device__ bool takes_row(int i) const { return takes_row_half(i, 0) || takes_row_half(i, 1); }
  __device__ bool takes_column(int j) const {
    bool any = false;
#pragma unroll
    for (int i = 0; i < kTilesM; ++i) any |= takes(i, j);
    return any;
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
