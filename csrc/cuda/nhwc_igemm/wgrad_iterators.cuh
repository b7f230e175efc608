// The operand iterators of the weight-gradient GEMM (wgrad_problem.cuh): each stage copies kBlockK
// pixels (GEMM-K rows) of both operands into [k][m] / [k][n] tiles (wgrad_tile.cuh) with 16-byte
// cp.async, zero-filling pixels past the block's split, taps in the padding and channels past the
// group's. Pixels advance by additions only: a stage is (stage_n, stage_p, stage_q) images, rows
// and columns, with one carry each (the host precomputes them; the main loop divides nothing).
//
// PixelRowCopies: a thread copies chunk tid % kChunksPerRow of rows tid / kChunksPerRow + i*kRowStep,
// so consecutive threads read a pixel's contiguous channels and write a contiguous tile row (laid
// out in the tile as Rows::offset says).
#pragma once

#include <cstdint>

#include "../../simt/cp_async.h"
#include "wgrad_problem.cuh"

namespace convkernels::cuda::nhwc_igemm {

template <class Tile, typename T, int kRowElements, class Rows>
struct PixelRowCopies {
  static constexpr int kChunksPerRow = kRowElements / Tile::kElementsPerChunk;
  static constexpr int kRowStep = Tile::kThreads / kChunksPerRow;
  static constexpr int kRows = Tile::kBlockK / kRowStep;
  static_assert(Tile::kThreads % kChunksPerRow == 0 && Tile::kBlockK % kRowStep == 0, "whole rows per thread");

  int row, chunk;

  __device__ explicit PixelRowCopies(int tid) : row(tid / kChunksPerRow), chunk(tid % kChunksPerRow) {}

  __device__ int element() const { return chunk * Tile::kElementsPerChunk; }
  __device__ int row_of(int i) const { return row + i * kRowStep; }

  // Row i's chunk of `tile` = 16 bytes at `source` where `inside`, else zeros (reading nothing).
  __device__ void copy(char* tile, int i, const T* source, bool inside) const {
    simt::cp_async_cg<16>(tile + Rows::offset(row_of(i), element()), source, inside ? 16 : 0);
  }
};

// A: dy's kBlockM output channels (from m0) of each pixel.
template <class Tile, typename T>
struct GradOutputIterator {
  using Copies = PixelRowCopies<Tile, T, Tile::kBlockM, typename Tile::RowsA>;

  Copies copies;
  const T* dy;                    // the tensor (a valid address for zero-fills)
  int64_t channel;                // the thread's channel in a pixel
  int64_t pixel[Copies::kRows];   // GEMM-K index of each row
  int64_t end;                    // the split's last pixel + 1
  bool channels_inside;

  __device__ GradOutputIterator(const NhwcWgradProblem& p, const T* grad_output, int group, int m0, int64_t begin,
                                int64_t split_end, int tid)
      : copies(tid), dy(grad_output), end(split_end) {
    channel = int64_t{group} * p.k_per_group + m0 + copies.element();
    channels_inside = m0 + copies.element() < p.k_per_group;
#pragma unroll
    for (int i = 0; i < Copies::kRows; ++i) pixel[i] = begin + copies.row_of(i);
  }

  __device__ void copy(const NhwcWgradProblem& p, char* tile) const {
#pragma unroll
    for (int i = 0; i < Copies::kRows; ++i) {
      const bool inside = channels_inside && pixel[i] < end;
      copies.copy(tile, i, inside ? dy + pixel[i] * p.K + channel : dy, inside);
    }
  }

  __device__ void advance() {
#pragma unroll
    for (int i = 0; i < Copies::kRows; ++i) pixel[i] += Tile::kBlockK;
  }
};

// B: x's kBlockN columns (from n0) of the GEMM's N = (tap, channel): each thread's chunk is one
// tap's channels, read at the input pixel each output pixel reaches through that tap.
template <class Tile, typename T>
struct ActivationTapIterator {
  using Copies = PixelRowCopies<Tile, T, Tile::kBlockN, typename Tile::RowsB>;

  Copies copies;
  const T* x;
  int64_t channel;  // the thread's channel in a pixel
  int reach_h, reach_w;  // r*dil_h - pad_h and s*dil_w - pad_w of the chunk's tap (r, s)
  int64_t pixel[Copies::kRows], image[Copies::kRows];  // GEMM-K index; n*H*W*C of its image
  int p_of[Copies::kRows], q_of[Copies::kRows];
  int64_t end;
  bool tap_inside;  // the chunk's tap is one of the filter's

  __device__ ActivationTapIterator(const NhwcWgradProblem& p, const T* input, int group, int n0, int64_t begin,
                                   int64_t split_end, int tid)
      : copies(tid), x(input), end(split_end) {
    const int n = n0 + copies.element();
    const int tap = n / p.c_per_group;
    channel = int64_t{group} * p.c_per_group + (n - tap * p.c_per_group);
    tap_inside = tap < p.R * p.S;
    // A column past the filter copies nothing: its reach is tap 0's, not a product that may
    // overflow (a dilation of 2^30 times a tap index past R).
    const int r = tap_inside ? tap / p.S : 0, s = tap_inside ? tap - r * p.S : 0;
    reach_h = r * p.dil_h - p.pad_h;
    reach_w = s * p.dil_w - p.pad_w;
    const int64_t PQ = int64_t{p.P} * p.Q;
#pragma unroll
    for (int i = 0; i < Copies::kRows; ++i) {
      pixel[i] = begin + copies.row_of(i);
      const int64_t image_index = pixel[i] / PQ;
      const int pq = static_cast<int>(pixel[i] - image_index * PQ);
      image[i] = image_index * p.H * p.W * p.C;
      p_of[i] = pq / p.Q;
      q_of[i] = pq % p.Q;
    }
  }

  __device__ void copy(const NhwcWgradProblem& p, char* tile) const {
#pragma unroll
    for (int i = 0; i < Copies::kRows; ++i) {
      const int h = p_of[i] * p.stride_h + reach_h, w = q_of[i] * p.stride_w + reach_w;
      const bool inside = tap_inside && pixel[i] < end &&
                          static_cast<unsigned>(h) < static_cast<unsigned>(p.H) &&
                          static_cast<unsigned>(w) < static_cast<unsigned>(p.W);
      const int64_t offset = image[i] + (int64_t{h} * p.W + w) * p.C + channel;
      copies.copy(tile, i, inside ? x + offset : x, inside);
    }
  }

  __device__ void advance(const NhwcWgradProblem& p) {
    const int64_t image_size = int64_t{p.H} * p.W * p.C;
#pragma unroll
    for (int i = 0; i < Copies::kRows; ++i) {
      pixel[i] += Tile::kBlockK;
      q_of[i] += p.stage_q;
      p_of[i] += p.stage_p;
      image[i] += p.stage_n * image_size;
      if (q_of[i] >= p.Q) {
        q_of[i] -= p.Q;
        ++p_of[i];
      }
      if (p_of[i] >= p.P) {
        p_of[i] -= p.P;
        image[i] += image_size;
      }
    }
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
