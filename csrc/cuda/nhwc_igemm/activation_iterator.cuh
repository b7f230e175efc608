// ActivationIterator: the A operand of the channels_last implicit GEMM, the im2col view of an NHWC
// activation, copied a stage at a time into a swizzled shared tile (ChunkCopies, in pieces of
// kCopyBytes), zero-filled
// where the tap falls in the padding or past the group's channels.
//
// The constructor decomposes each of the thread's output pixels m into (image, p, q) once; a stage
// then costs two compares and an add per row (the tap's offset comes from the FilterTapCursor).
#pragma once

#include <cstdint>

#include "chunk_copies.cuh"
#include "filter_tap_cursor.cuh"
#include "problem.cuh"

namespace convkernels::cuda::nhwc_igemm {

template <class Tile, typename T, int kCopyBytes = 16>
struct ActivationIterator {
  using Copies = ChunkCopies<Tile, T, Tile::kBlockM, kCopyBytes>;
  using Element = T;

  Copies copies;
  const T* image;                    // the input at the group's first channel
  int h0[Copies::kRows], w0[Copies::kRows];  // window origin of each row's pixel (negative in the padding)
  int64_t pixel[Copies::kRows];      // ((image * H + h0) * W + w0) * C + the thread's channel
  uint32_t rows_inside = 0;          // bit i: row i is one of the M output pixels

  __device__ ActivationIterator(const NhwcConvProblem& p, const T* in, int group, int64_t m0, int tid)
      : copies(tid), image(in + int64_t{group} * p.c_per_group) {
    const int64_t PQ = int64_t{p.P} * p.Q;
#pragma unroll
    for (int i = 0; i < Copies::kRows; ++i) {
      const int64_t m = m0 + copies.row_of(i);
      const int64_t n = m / PQ;
      const int pq = static_cast<int>(m - n * PQ);
      h0[i] = pq / p.Q * p.stride_h - p.pad_h;
      w0[i] = pq % p.Q * p.stride_w - p.pad_w;
      pixel[i] = ((n * p.H + h0[i]) * p.W + w0[i]) * p.C + copies.channel();
      if (m < p.M()) rows_inside |= 1u << i;
    }
  }

  // Issues this thread's copies of the stage at `at` into the A tile `tile`.
  __device__ void copy(const NhwcConvProblem& p, const FilterTapCursor& at, char* tile) const {
    const bool channels_inside = at.c + copies.channel() < p.c_per_group;
#pragma unroll
    for (int i = 0; i < Copies::kRows; ++i) {
      const int h = h0[i] + at.dh, w = w0[i] + at.dw;
      const bool inside = channels_inside && (rows_inside >> i & 1) &&
                          static_cast<unsigned>(h) < static_cast<unsigned>(p.H) &&
                          static_cast<unsigned>(w) < static_cast<unsigned>(p.W);
      copies.copy(tile, i, inside ? image + pixel[i] + at.image_offset + at.c : image, inside);
    }
  }

  // This thread's chunks of the landed stage's tile, rounded to TF32 (ChunkCopies).
  __device__ void round_to_tf32(char* tile) const { copies.round_to_tf32(tile); }
};

}  // namespace convkernels::cuda::nhwc_igemm
