// The shared-memory tile machinery of the depthwise kernels (depthwise_{fprop,dgrad,wgrad}.cuh).
//
// Every depthwise computation here is reduced to one primitive, a unit-stride 1-D correlation
// between a row staged in shared memory and a short weight vector:
//
//   acc[j] += sum over o < length of weights[o] * src[o + j],   j < kVec
//
// run in register chunks of kVec x kVec fused multiply-adds. A chunk loads kVec new source values
// and kVec weights as two vector loads (the other kVec source values are carried over from the
// previous chunk), so shared-memory traffic is 2 / kVec loads per FMA instead of the 2 per FMA of a
// direct loop over taps. fprop and dgrad run it with the filter row as weights and kVec adjacent
// outputs of a thread as j; wgrad with a dy row as weights and kVec adjacent filter taps as j.
//
// Strides and dilations are folded into the layout so the primitive stays unit-stride:
//  - A source row is staged in `phases` interleaved phases: staged (phase f, position t) holds
//    source column col0 + f + t * phases. With phases = stride_w, filter tap s of output column q
//    (relative to the tile) reads phase (s * dil_w) % stride_w at position q + (s * dil_w) / stride_w.
//  - The filter is staged "expanded": one row of taps_padded weights per (filter row, phase), where
//    expanded tap (f, o) holds w[s] for the s with s * dil_w == o * stride_w + f, and 0 where no tap
//    lands (dilation gaps, and the padding of the row to a multiple of kVec).
// Staged values are acc_t (float for the half types), so conversions happen once, at staging, and
// positions outside the source plane are staged as zeros: no bounds checks in the inner loop.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include <c10/util/Exception.h>

#include "../conv_params.h"
#include "../simt/simt.h"
#include "launch.cuh"

namespace convkernels::cuda::depthwise {

constexpr int kVec = 4;              // outputs (fprop, dgrad) or taps (wgrad) per thread
// Threads per block, all kernels. The kernels carry no __launch_bounds__: with one, ptxas (CUDA 13)
// targets 64 registers and spills the double variants; without, they use 56-76 and spill nothing.
constexpr int kBlockThreads = 256;
constexpr std::size_t kSharedBudget = 64 * 1024;  // dynamic shared memory a launch aims to stay under

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// kVec consecutive staged values, loaded as one vector (LDS.128 for float).
template <typename acc_t>
struct alignas(sizeof(acc_t) * kVec) Fragment {
  acc_t v[kVec];
};

template <typename acc_t>
__device__ __forceinline__ Fragment<acc_t> load_fragment(const acc_t* src) {
  return simt::ld_shared(reinterpret_cast<const Fragment<acc_t>*>(src));
}

// acc[j] += sum over o < length of weights[o] * src[o + j], for j < kVec. `length` is a multiple of
// kVec; src and weights are kVec-aligned and src holds length + kVec values.
template <typename acc_t>
__device__ __forceinline__ void correlate(const acc_t* src, const acc_t* weights, int length,
                                          acc_t (&acc)[kVec]) {
  simt::note_fma<acc_t>(int64_t{length} * kVec);
  Fragment<acc_t> lo = load_fragment(src);
  for (int o = 0; o < length; o += kVec) {
    const Fragment<acc_t> hi = load_fragment(src + o + kVec);
    const Fragment<acc_t> wv = load_fragment(weights + o);
#pragma unroll
    for (int d = 0; d < kVec; ++d) {
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        acc[j] += wv.v[d] * (j + d < kVec ? lo.v[j + d] : hi.v[j + d - kVec]);
      }
    }
    lo = hi;
  }
}

// tile[row][f][t] = plane[row0 + row][col0 + f + t * phases] for row < rows, f < phases,
// t < phase_len, and 0 outside the height x width plane (or everywhere when plane is null).
// Called by `threads` threads, `thread` being the caller's index among them. Groups of up to 32
// threads stage one row at a time: coalesced loads, and the row's bounds and address are computed
// once per row rather than per element (staging is most of the work of a 3x3 filter).
template <typename T, typename acc_t>
__device__ void stage_tile(const T* __restrict__ plane, int64_t height, int64_t width, int64_t row0,
                           int64_t col0, int phases, int phase_len, int rows, int thread,
                           int threads, acc_t* __restrict__ tile) {
  const int pitch = phases * phase_len;
  const int group_size = min(threads, 32);
  const int groups = threads / group_size;
  const int group = thread / group_size, lane = thread % group_size;
  if (group >= groups) return;  // the threads of a last, partial group sit out
  for (int row = group; row < rows; row += groups) {
    const int64_t h = row0 + row;
    const T* const src = plane != nullptr && h >= 0 && h < height ? plane + h * width : nullptr;
    acc_t* const dst = tile + row * pitch;
    for (int pos = lane; pos < pitch; pos += group_size) {
      const int phase = phases == 1 ? 0 : pos / phase_len;
      const int64_t w = col0 + phase + int64_t{pos - phase * phase_len} * phases;
      simt::st_shared(dst + pos, src != nullptr && w >= 0 && w < width
                                     ? static_cast<acc_t>(simt::ld_global(src + w))
                                     : acc_t(0));
    }
  }
}

// The filter column s whose dilated offset s * dil equals `offset`, or -1 if none does.
__device__ __forceinline__ int tap_at(int offset, int dil, int taps) {
  if (offset < 0 || offset % dil != 0) return -1;
  const int s = offset / dil;
  return s < taps ? s : -1;
}

// How fprop and dgrad cover an out_h x out_w output (in their unit-stride output coordinates)
// with blocks: each z-slice of a block (kBlockThreads / slices threads in x and y) computes a
// tile_h x tile_w output tile of one plane, kVec adjacent outputs of a row per thread. Narrow
// planes get narrow tiles, and small planes several planes per block, so that threads stay busy.
struct PlaneTiling {
  int tile_h, tile_w;           // outputs per slice; tile_w == block.x * kVec
  int tiles_h, tiles_w;         // tiles per plane
  int taps_padded;              // expanded filter row length, a multiple of kVec
  int phase_len;                // staged positions per phase: tile_w + taps_padded
  int band;                     // filter rows staged per pass
  int slice_len;                // acc_t per z-slice: filter, then source tile
  dim3 block;
  int64_t blocks;

  std::size_t shared_bytes(std::size_t acc_size) const {
    return acc_size * static_cast<std::size_t>(slice_len) * block.z;
  }
};

// A slice stages `filter_len` filter values and, per pass over `band` filter rows, at most
// rows_for_band(tile_h, band) source rows of `phases` phases. The band is the whole filter unless
// that overflows kSharedBudget (huge dilations).
template <class RowsForBand>
PlaneTiling plane_tiling(int64_t planes, int64_t out_h, int64_t out_w, int64_t kernel_h,
                         int64_t taps_padded, int64_t phases, int64_t filter_len,
                         std::size_t acc_size, RowsForBand rows_for_band) {
  PlaneTiling t{};
  const int64_t bx = std::clamp<int64_t>(ceil_div(out_w, kVec), 1, 32);
  const int64_t by_max = kBlockThreads / bx;
  t.tiles_h = static_cast<int>(ceil_div(out_h, by_max));
  const int64_t by = ceil_div(out_h, t.tiles_h);  // even split: no mostly-empty last tile
  t.tile_w = static_cast<int>(bx * kVec);
  t.tile_h = static_cast<int>(by);
  t.tiles_w = static_cast<int>(ceil_div(out_w, t.tile_w));
  t.taps_padded = static_cast<int>(taps_padded);
  t.phase_len = t.tile_w + t.taps_padded;

  const auto slice_len = [&](int64_t band) {
    return filter_len + rows_for_band(by, band) * phases * t.phase_len;
  };
  int64_t bz = std::clamp<int64_t>(kBlockThreads / (bx * by), 1, std::min<int64_t>(planes, 64));
  int64_t band = kernel_h;
  while (bz > 1 && static_cast<std::size_t>(slice_len(band) * bz) * acc_size > kSharedBudget) --bz;
  while (band > 1 && static_cast<std::size_t>(slice_len(band)) * acc_size > kSharedBudget) --band;
  t.band = static_cast<int>(band);
  t.slice_len = static_cast<int>(slice_len(band));
  t.block = dim3(static_cast<unsigned>(bx), static_cast<unsigned>(by), static_cast<unsigned>(bz));
  t.blocks = ceil_div(planes, bz) * t.tiles_h * t.tiles_w;
  TORCH_CHECK(t.shared_bytes(acc_size) <= 227 * 1024,
              "depthwise convolution: the filter extent is too large for a shared-memory tile (",
              t.shared_bytes(acc_size), " bytes)");
  return t;
}

// Where a thread of a PlaneTiling launch works: its plane, its output tile and its place in it.
struct TileCoord {
  int64_t plane;  // may be >= planes in the last block: then the slice computes nothing useful
  int tile_row, tile_col;  // tile index within the plane
  int thread;              // index within the slice
  int slice_threads;

  __device__ TileCoord(const PlaneTiling& t, const Grid& first) {
    const int64_t tiles = int64_t{t.tiles_h} * t.tiles_w;
    const int64_t block = block_index(first).x;
    const int64_t tile = block % tiles;
    plane = block / tiles * blockDim.z + threadIdx.z;
    tile_row = static_cast<int>(tile / t.tiles_w);
    tile_col = static_cast<int>(tile % t.tiles_w);
    thread = threadIdx.x + threadIdx.y * blockDim.x;
    slice_threads = blockDim.x * blockDim.y;
  }
};

}  // namespace convkernels::cuda::depthwise
