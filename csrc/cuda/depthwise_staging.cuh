// Staging a tile of source rows into shared memory for the depthwise kernels (depthwise_tile.cuh):
//
//   tile[row * row_len + f * phase_len + t] = plane[row0 + row][col0 + f + t * phases]
//
// for row < rows, f < phases, t < used_len (row_len >= phases * phase_len), in acc_t, and 0
// outside the height x width plane (or everywhere when plane is null). Staging is most of the
// global traffic of a small filter, so:
//  - Unit-stride rows (phases == 1) of a plane whose rows are whole 16-byte vectors move as 16-byte
//    loads (LDG.E.128) of the aligned vectors that cover them. The tile's column col0 need not be
//    aligned (it is q0 - pad_w): a row is staged from the vector that holds col0, so its first
//    `lead` values land before the row's start, in the previous row's unused tail (in the
//    kMaxVectorLength free values before the tile for the first row); that takes row_len >= lead +
//    used_len rounded up to the vector. A row_len of whole vectors stages row_len / kLength of
//    them, the rows one contiguous run; another (half types read at a pitch of 28 mod 32 values,
//    PlaneTiling) the vectors up to the last used column. Strided rows and rows that are not
//    whole vectors (odd widths, a misaligned view) are loaded element by element, adjacent lanes
//    on adjacent columns, each landing in its phase: every sector is read once (a phase at a time,
//    lanes stride_w columns apart read each sector once per phase).
//  - Each thread issues kLoadsInFlight loads before it stores any of them, so that a warp has that
//    many independent loads in flight rather than one.
//  - A vector lands in shared memory as single-value stores (its staged position is rarely
//    aligned). The lanes of a warp hold consecutive vectors, which lie contiguously in shared
//    memory where the pitch is whole vectors, one run per slice where small slices share a warp;
//    each lane stores its values in an order rotated by one bank per 128 bytes of the warp's
//    vectors, counted by lane (one value, two of a half type staged as itself). The lanes of each
//    128 bytes then store into 8 banks (float) of one residue mod the vector, and those of the
//    next 128 bytes into the next residue's: every store instruction of the warp hits 32 distinct
//    banks wherever each run starts, so long as slices lie whole vectors apart (PlaneTiling's
//    slice_len).
#pragma once

#include <cstdint>

#include "../simt/simt.h"
#include "depthwise_tile.cuh"

namespace convkernels::cuda::depthwise {

constexpr int kLoadsInFlight = 4;

// load(i) for i = thread, thread + threads, ... < items, then store(i, loaded value), in batches of
// kLoadsInFlight: every load of a batch is issued before the first store waits on one.
template <class Load, class Store>
__device__ __forceinline__ void in_batches(int items, int thread, int threads, Load load, Store store) {
  using Value = decltype(load(0));
  for (int first = thread; first < items; first += kLoadsInFlight * threads) {
    Value values[kLoadsInFlight] = {};
#pragma unroll
    for (int b = 0; b < kLoadsInFlight; ++b) {
      if (first + b * threads < items) values[b] = load(first + b * threads);
    }
#pragma unroll
    for (int b = 0; b < kLoadsInFlight; ++b) {
      if (first + b * threads < items) store(first + b * threads, values[b]);
    }
  }
}

// v rotated left by `by` places (out.v[i] == v.v[(i + by) % kLength]), by selects rather than a
// run-time index, which would put v in local memory.
template <typename E, int kLength>
__device__ __forceinline__ Vector<E, kLength> rotated(Vector<E, kLength> v, int by) {
#pragma unroll
  for (int shift = 1; shift < kLength; shift *= 2) {
    if (by & shift) {
      Vector<E, kLength> out;
#pragma unroll
      for (int i = 0; i < kLength; ++i) out.v[i] = v.v[(i + shift) % kLength];
      v = out;
    }
  }
  return v;
}

// The unit-stride rows of the tile from a plane whose rows are whole, aligned 16-byte vectors,
// per_row vectors a row from first_col; the threads of a slice take consecutive vectors of the
// rows in turn.
template <typename T, typename acc_t>
__device__ void stage_rows_in_vectors(const T* __restrict__ plane, int64_t height, int64_t width,
                                      int64_t row0, int64_t first_col, int lead, int per_row, int pitch,
                                      int rows, int thread, int threads, acc_t* __restrict__ tile) {
  constexpr int kLength = 16 / sizeof(T);
  constexpr int kValuesPerWavefront = 128 / sizeof(acc_t);
  // The rotation advances a bank (4 bytes) per 128 bytes of position: one value, two of a half type.
  constexpr int kRotationStep = sizeof(acc_t) < 4 ? 4 / sizeof(acc_t) : 1;
  using Loaded = Vector<T, kLength>;
  in_batches(
      rows * per_row, thread, threads,
      [&](int item) {
        const int64_t h = row0 + item / per_row, w = first_col + int64_t{item % per_row} * kLength;
        // The plane's rows being whole vectors, a vector lies wholly inside or outside it.
        return plane != nullptr && h >= 0 && h < height && w >= 0 && w < width
                   ? simt::ld_global(reinterpret_cast<const Loaded*>(plane + h * width + w))
                   : Loaded{};
      },
      [&](int item, const Loaded& loaded) {
        const int at = item / per_row * pitch + item % per_row * kLength - lead;  // where loaded.v[0] lands
        const int lane = static_cast<int>(block_thread() % 32);
        const int rotation = lane * kLength / kValuesPerWavefront * kRotationStep % kLength;
        const Loaded values = rotated(loaded, rotation);
#pragma unroll
        for (int i = 0; i < kLength; ++i) {
          simt::st_shared(tile + at + (i + rotation) % kLength, static_cast<acc_t>(values.v[i]));
        }
      });
}

// Any tile, element by element. Groups of threads stage one row at a time: coalesced loads, and
// the row's bounds and address are computed once per row rather than per element. A group
// (staging_group) is as many threads as a row's items, rounded up to a power of two, at most 32,
// so that a warp stages as many short rows at once as it holds (7x7 weight gradients: a 12-item
// x row took a warp's request, 448 load requests and 768 store wavefronts on 32 planes).
template <typename T, typename acc_t>
__device__ void stage_rows_by_element(const T* __restrict__ plane, int64_t height, int64_t width,
                                      int64_t row0, int64_t col0, int phases, int phase_len, int row_len,
                                      int used_len, int rows, int thread, int threads,
                                      acc_t* __restrict__ tile) {
  const int row_items = phases * used_len;
  const int group_size = staging_group(row_items, threads);
  const int groups = threads / group_size;
  const int group = thread / group_size, lane = thread % group_size;
  if (group >= groups) return;  // the threads of a last, partial group sit out
  for (int trip = 0, row = group; row < rows; ++trip, row += groups) {
    const simt::LoopTrip named(trip);  // a row's last store takes only some lanes
    const int64_t h = row0 + row;
    const T* const src = plane != nullptr && h >= 0 && h < height ? plane + h * width : nullptr;
    acc_t* const dst = tile + row * row_len;
    // Item i is column col0 + i, so that a warp's loads are contiguous; it lands in phase i % phases.
    in_batches(
        row_items, lane, group_size,
        [&](int item) {
          const int64_t w = col0 + item;
          return src != nullptr && w >= 0 && w < width ? static_cast<acc_t>(simt::ld_global(src + w))
                                                       : acc_t(0);
        },
        [&](int item, acc_t value) {
          const int phase = phases == 1 ? 0 : item % phases;
          simt::st_shared(dst + phase * phase_len + (phases == 1 ? item : item / phases), value);
        });
  }
}

// Called by `threads` threads, `thread` being the caller's index among them. Callers whose
// used_len is less than row_len keep the kMaxVectorLength values before the tile free.
template <typename T, typename acc_t>
__device__ void stage_tile(const T* __restrict__ plane, int64_t height, int64_t width, int64_t row0,
                           int64_t col0, int phases, int phase_len, int row_len, int used_len, int rows,
                           int thread, int threads, acc_t* __restrict__ tile) {
  constexpr int kLength = 16 / sizeof(T);
  const int64_t first_col = (col0 >= 0 ? col0 : col0 - (kLength - 1)) / kLength * kLength;
  // A pitch of whole vectors stages them all: the rows are one contiguous run (rotated stores).
  const int lead = static_cast<int>(col0 - first_col);
  const int per_row = row_len % kLength == 0 ? row_len / kLength : (lead + used_len + kLength - 1) / kLength;
  const bool whole_vectors =
      width % kLength == 0 && reinterpret_cast<std::uintptr_t>(plane) % (kLength * sizeof(T)) == 0;
  if (phases == 1 && whole_vectors && per_row * kLength <= row_len) {
    stage_rows_in_vectors(plane, height, width, row0, first_col, lead, per_row, row_len, rows, thread,
                          threads, tile);
  } else {
    stage_rows_by_element(plane, height, width, row0, col0, phases, phase_len, row_len, used_len, rows,
                          thread, threads, tile);
  }
}

}  // namespace convkernels::cuda::depthwise
