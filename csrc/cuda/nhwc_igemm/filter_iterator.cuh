// FilterIterator: the B operand of the channels_last implicit GEMM, the KRSC filters of the
// block's kBlockN output channels (rows), each contiguous along (r, s, c); copied a stage at a
// time like the ActivationIterator. kPacked: the filters are block-diagonal (packed groups,
// problem.cuh), and a row's chunks that hold none of its own group's channels are zero-filled,
// not read.
#pragma once

#include <cstdint>

#include "chunk_copies.cuh"
#include "filter_tap_cursor.cuh"
#include "packed_groups.cuh"
#include "problem.cuh"

namespace convkernels::cuda::nhwc_igemm {

template <class Tile, typename T, bool kPacked = false, int kCopyBytes = 16>
struct FilterIterator {
  using Copies = ChunkCopies<Tile, T, Tile::kBlockN, kCopyBytes>;

  Copies copies;
  const T* filters;          // the group's first filter
  int64_t filter_size;       // R * S * c_per_group
  int64_t first_row;         // offset of the thread's chunk in the filter of its first row
  uint32_t rows_inside = 0;  // bit i: row i is one of the group's output channels
  int block[Copies::kRows];  // packed: row i's group's first channel, less the thread's channel

  __device__ FilterIterator(const NhwcConvProblem& p, const T* w, int group, int n0, int tid)
      : copies(tid), filter_size(int64_t{p.R} * p.S * p.c_per_group) {
    filters = w + int64_t{group} * p.k_per_group * filter_size;
    first_row = (n0 + copies.row) * filter_size + copies.channel();
#pragma unroll
    for (int i = 0; i < Copies::kRows; ++i) {
      if (n0 + copies.row_of(i) < p.k_per_group) rows_inside |= 1u << i;
      if constexpr (kPacked) block[i] = (n0 + copies.row_of(i)) / p.packed_k * p.packed_c - copies.channel();
    }
  }

  __device__ void copy(const NhwcConvProblem& p, const FilterTapCursor& at, char* tile) const {
    const bool channels_inside = at.c + copies.channel() < p.c_per_group;
#pragma unroll
    for (int i = 0; i < Copies::kRows; ++i) {
      bool inside = channels_inside && (rows_inside >> i & 1);
      if constexpr (kPacked) {
        inside = inside && chunk_meets_group(at.c - block[i], p.packed_c, Copies::kElementsPerChunk);
      }
      const int64_t offset = first_row + i * Copies::kRowStep * filter_size + at.filter_offset + at.c;
      copies.copy(tile, i, inside ? filters + offset : filters, inside);
    }
  }

  // This thread's chunks of the landed stage's tile, rounded to TF32 (ChunkCopies).
  __device__ void round_to_tf32(char* tile) const { copies.round_to_tf32(tile); }
};

}  // namespace convkernels::cuda::nhwc_igemm
