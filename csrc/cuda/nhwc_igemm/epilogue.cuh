// The epilogue of the channels_last implicit GEMM: accumulators (of WarpMma or CudaCoreMma, which
// share a layout) plus bias, converted to the output type, staged through shared memory and written as 16-byte stores along the output's channels.
//
// The fragments leave each lane with pairs of columns on rows 8 apart, which would make narrow,
// scattered stores. Instead the block stages one m16 tile of every warp at a time (kRows rows of
// the block's kBlockN columns) in the mainloop's shared memory, then its threads copy the staged
// rows out: consecutive threads take consecutive 16-byte pieces of a row, so each warp writes
// whole rows of NHWC output. Staged rows are padded by 8 elements, which puts a warp's fragment
// stores (pairs of 2- or 4-byte elements, rows g = lane / 4) in distinct banks.
// Where 16-byte stores cannot be used (channels per group not a multiple of 16 bytes, packed groups
// padded to whole n8 tiles, or the fused channel shuffle, which scatters a group's channels), the
// copy stores elements one by one, consecutive threads on consecutive columns.
// A stored row's pixel comes from NhwcConvProblem::output_pixel (a stride phase of dgrad writes
// every stride-th pixel of dx).
#pragma once

#include <cstdint>

#include "../../simt/simt.h"
#include "problem.cuh"
#include "tile_shape.cuh"

namespace convkernels::cuda::nhwc_igemm {

// The bias of column n of GEMM group `group` (zero where there is none).
template <typename Accumulator, typename T>
__device__ Accumulator column_bias(const NhwcConvProblem& p, const T* bias, int group, int n) {
  const NhwcConvProblem::Column column = p.column(group, n);
  return bias != nullptr && n < p.k_per_group && column.is_output()
             ? static_cast<Accumulator>(simt::ld_global(bias + p.bias_index(column)))
             : Accumulator(0);
}

// Writes the 16 bytes of columns n.. of GEMM group `group` staged at `from` to output pixel
// `pixel` (p.output_pixel's): one 16-byte store where a GEMM group's columns are contiguous
// channels, whole vectors of them, else element by element.
template <typename T>
struct OutputPieces {
  static constexpr int kElements = 16 / sizeof(T);
  struct alignas(16) Vector {
    uint32_t words[4];
  };
  bool vectors;

  __device__ explicit OutputPieces(const NhwcConvProblem& p) : vectors(takes_vectors(p)) {}

  // Whether a GEMM group's columns are contiguous output channels, whole vectors of them.
  C10_HOST_DEVICE static bool takes_vectors(const NhwcConvProblem& p) {
    return !p.shuffle_output && p.packed_k == p.group_k && p.K % kElements == 0 && p.k_per_group % kElements == 0;
  }

  __device__ void store(const NhwcConvProblem& p, int group, int64_t pixel, int n, const T* from, T* out) const {
    T* at = out + pixel * p.K;
    if (vectors) {
      // Unshuffled and unpadded, GEMM group g's columns are the output channels g * k_per_group on:
      // p.output_channel(p.column(group, n)) without its divisions.
      simt::st_global(reinterpret_cast<Vector*>(at + group * p.k_per_group + n),
                      simt::ld_shared(reinterpret_cast<const Vector*>(from)));
    } else {
      for (int e = 0; e < kElements && n + e < p.k_per_group; ++e) {
        store_element(p, group, pixel, n + e, simt::ld_shared(from + e), out);
      }
    }
  }

  // Writes `value`, of column n of GEMM group `group`, to output pixel `pixel` unless the column
  // is padding.
  __device__ static void store_element(const NhwcConvProblem& p, int group, int64_t pixel, int n, T value, T* out) {
    const NhwcConvProblem::Column column = p.column(group, n);
    if (column.is_output()) simt::st_global(out + pixel * p.K + p.output_channel(column), value);
  }
};

// Where the output takes no 16-byte pieces, the copy goes a value a thread, but on the tiles whose
// 128 accumulators a thread leave no registers for a second copy loop: they store their pieces a
// value at a time, and the host gives such problems other tiles (conv_kernel.cuh).
template <class Tile>
constexpr bool copies_values = Tile::kMmaTilesM * Tile::kMmaTilesN * 4 < 128;

template <class Tile, typename T, class Mma>
struct Epilogue {
  using Accumulator = typename Mma::Accumulator;
  static constexpr int kElementsPerVector = OutputPieces<T>::kElements;
  static constexpr int kRows = Tile::kWarpsM * 16;
  static constexpr int kPitch = Tile::kBlockN + 8;
  static constexpr int kVectorsPerRow = Tile::kBlockN / kElementsPerVector;
  static_assert(kRows * kPitch * sizeof(T) <= Tile::kMainloopBytes, "the staged rows fit the stages");

  struct alignas(2 * sizeof(T)) Pair {
    T first, second;
  };

  // The GEMM row of staged row `row` while m16 tile i of every warp is staged.
  __device__ static int64_t staged_row_m(int64_t m0, int i, int row) {
    return m0 + row / 16 * Tile::kWarpM + 16 * i + row % 16;
  }

  // out[m0.., n0..] of the group = mma.acc + bias; `shared` is the mainloop's, free again.
  __device__ static void store(const NhwcConvProblem& p, const Mma& mma, const T* bias, T* out,
                               int group, int64_t m0, int n0, char* shared) {
    T* staged = reinterpret_cast<T*>(shared);
    const int g = mma.lane / 4, t = mma.lane % 4;
    const int warp_row = mma.m0 / Tile::kWarpM * 16;  // the warp's rows among the staged ones
    Accumulator bias_of[Tile::kMmaTilesN][2];
#pragma unroll
    for (int j = 0; j < Tile::kMmaTilesN; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        bias_of[j][e] = column_bias<Accumulator>(p, bias, group, n0 + mma.n0 + 8 * j + 2 * t + e);
      }
    }
    const OutputPieces<T> pieces(p);

#pragma unroll
    for (int i = 0; i < Tile::kMmaTilesM; ++i) {
#pragma unroll
      for (int j = 0; j < Tile::kMmaTilesN; ++j) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const Pair pair{static_cast<T>(mma.acc[i][j][2 * half] + bias_of[j][0]),
                          static_cast<T>(mma.acc[i][j][2 * half + 1] + bias_of[j][1])};
          T* at = staged + (warp_row + g + 8 * half) * kPitch + mma.n0 + 8 * j + 2 * t;
          simt::st_shared(reinterpret_cast<Pair*>(at), pair);
        }
      }
      __syncthreads();
      if (!copies_values<Tile> || pieces.vectors) {
        for (int v = threadIdx.x; v < kRows * kVectorsPerRow; v += Tile::kThreads) {
          const int row = v / kVectorsPerRow, column = v % kVectorsPerRow * kElementsPerVector;
          const int64_t m = staged_row_m(m0, i, row);
          const int n = n0 + column;
          if (m >= p.M() || n >= p.k_per_group) continue;
          pieces.store(p, group, p.output_pixel(m), n, staged + row * kPitch + column, out);
        }
      } else {
        // A thread a value, not a piece: a warp reads consecutive banks (values of pieces 16 bytes
        // apart would meet on a quarter of them) and stores consecutive channels together. Not
        // unrolled: the accumulators of the tiles still to stage hold most registers.
#pragma unroll 1
        for (int v = threadIdx.x; v < kRows * Tile::kBlockN; v += Tile::kThreads) {
          const simt::LoopTrip named(v / Tile::kThreads);  // lanes past the columns skip some trips
          const int row = v / Tile::kBlockN, column = v % Tile::kBlockN;
          const int64_t m = staged_row_m(m0, i, row);
          const int n = n0 + column;
          if (m >= p.M() || n >= p.k_per_group) continue;
          pieces.store_element(p, group, p.output_pixel(m), n, simt::ld_shared(staged + row * kPitch + column), out);
        }
      }
      __syncthreads();
    }
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
