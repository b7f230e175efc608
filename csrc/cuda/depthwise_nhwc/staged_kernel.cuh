// depthwise_nhwc_staged_kernel: a StagedProblem (staged_problem.h) at multiplier 1 and the full
// channel vector width, from tiles staged in shared memory (StagedTiling, staged_tiling.h): the
// forward correlation, or the input gradient as one correlation of dy per stride phase.
//
// A block stages, in one pass of 16-byte loads with several in flight, the source patch of its
// sub-tiles (zeros outside the plane) and its vectors' filter taps; after the one barrier each
// thread computes an OutputTile (output_tile.cuh) of one phase from there, walking the patch rows
// its outputs read and along each its phase's taps through a SourceWindow, as the register-run
// kernel does from global memory. Thread t holds slot t % kSlots of its pixels, so a quarter-warp
// reads whole staged lines.
#pragma once

#include "../depthwise_staging.cuh"
#include "../launch.cuh"
#include "output_tile.cuh"
#include "staged_problem.h"
#include "staged_tiling.h"

namespace convkernels::cuda {

template <typename T>
__global__ void depthwise_nhwc_staged_kernel(Grid first, depthwise_nhwc::StagedProblem q,
                                             depthwise_nhwc::StagedTiling t, const T* __restrict__ source,
                                             const T* __restrict__ filter, const T* __restrict__ bias,
                                             T* __restrict__ y) {
  using namespace depthwise_nhwc;
  using acc_t = at::opmath_type<T>;
  constexpr int kWidth = kFullWidth<T>;
  using Vector = ChannelVector<T, kWidth>;
  SIMT_DYNAMIC_SHARED(Vector, shared);
  const Vector* const patch = shared;  // pixel (row, col), slot i at [(row * patch_w + col) * kSlots + i]
  const Vector* const taps = shared + t.patch_len();  // tap r * S + s, vector g at [tap * group + g]
  const StagedAxis& rows = q.rows;
  const StagedAxis& cols = q.cols;

  const int64_t block = block_index(first).x;
  const int64_t vectors = q.channels / kWidth, vector0 = block % t.channel_groups * t.group;
  // A thread's slot is the same in staging (blockDim.x and the patch are whole lines) and after.
  const int thread = threadIdx.x, slot = thread % kSlots, g = slot % t.group;
  const int64_t tile = block / t.channel_groups * t.sub_tiles() + slot / t.group;
  const int64_t n = tile / (t.tiles_h * t.tiles_w);
  const int64_t tile_p0 = tile / t.tiles_w % t.tiles_h * t.tile_h, tile_q0 = tile % t.tiles_w * t.tile_w;
  const bool valid = tile < t.tiles && vector0 + g < vectors;
  const int64_t k = (vector0 + g) * kWidth;

  const int64_t top = tile_p0 * rows.stride - rows.lead, left = tile_q0 * cols.stride - cols.lead;
  const int patch_len = t.patch_len();
  const int filter_taps = static_cast<int>(rows.filter * cols.filter);
  depthwise::in_batches(
      patch_len + filter_taps * t.group, thread, static_cast<int>(blockDim.x),
      [&](int i) {
        if (i >= patch_len) {
          const int tap = (i - patch_len) / t.group;
          return vector0 + g < vectors
                     ? simt::ld_global(reinterpret_cast<const Vector*>(filter + tap * q.channels + k))
                     : Vector{};
        }
        const int pixel = i / kSlots;
        const int64_t row = top + pixel / t.patch_w, col = left + pixel % t.patch_w;
        return valid && row >= 0 && row < rows.source && col >= 0 && col < cols.source
                   ? simt::ld_global(reinterpret_cast<const Vector*>(
                         source + ((n * rows.source + row) * cols.source + col) * q.channels + k))
                   : Vector{};
      },
      [&](int i, const Vector& value) { simt::st_shared(shared + i, value); });
  __syncthreads();

  const int work = thread / kSlots, phase = work / t.thread_tiles(), row_group = work % t.thread_tiles() / t.runs(),
            run = work % t.runs();
  const PhaseAxis phase_rows = rows.phase(phase / cols.phases()), phase_cols = cols.phase(phase % cols.phases());
  const int64_t p0 = tile_p0 + row_group * kRows, q0 = tile_q0 + run * kRun;
  if (!valid || p0 >= phase_rows.outputs || q0 >= phase_cols.outputs) return;
  OutputTile<T, kWidth> tile_out(bias != nullptr ? load_channels<T, kWidth>(bias + k) : Lanes<acc_t, kWidth>{});
  // Patch sizes are small: the walk is in int.
  const int R = static_cast<int>(phase_rows.taps), S = static_cast<int>(phase_cols.taps);
  const int sh = static_cast<int>(rows.stride), dh = static_cast<int>(rows.dilation);
  const int sw = static_cast<int>(cols.stride), dw = static_cast<int>(cols.dilation);
  // Output row p0 + i reads patch row first_row + i * sh + j * dh through the phase's tap j. Walking
  // the rows, offset[i] = row - first_row - i * sh is kept as quotient and remainder of dh: no
  // division per row.
  const int first_row = row_group * kRows * sh + static_cast<int>(rows.lead - phase_rows.pad);
  const int last_row = first_row + (kRows - 1) * sh + (R - 1) * dh;
  int quotient[kRows], remainder[kRows];
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
    quotient[i] = -((i * sh + dh - 1) / dh);  // floor(-i * sh / dh)
    remainder[i] = quotient[i] * -dh - i * sh;
  }
  const int first_col = run * kRun * sw + static_cast<int>(cols.lead - phase_cols.pad);
  const int rows_out = static_cast<int>(min(phase_rows.outputs - p0, int64_t{kRows}));
  const int cols_out = static_cast<int>(min(phase_cols.outputs - q0, int64_t{kRun}));
  // Output v of the phase lands at first_output + v * phases along each axis. Indexed as vectors, as
  // OutputTile::store does (a T* offset by a row loses the 16-byte stores).
  Vector* const out = reinterpret_cast<Vector*>(y) +
                      ((n * rows.output + phase_rows.first_output + p0 * rows.phases()) * cols.output +
                       phase_cols.first_output + q0 * cols.phases()) * vectors + vector0 + g;
  // Staged taps are addressed in vectors: filter row r at r * row_taps, filter column s at s * group.
  const int row_taps = static_cast<int>(cols.filter) * t.group;
  const int tap_row0 = static_cast<int>(phase_rows.first_tap) * row_taps + g;
  const int tap_row_step = static_cast<int>(phase_rows.tap_step) * row_taps;
  const int tap_col0 = static_cast<int>(phase_cols.first_tap) * t.group;
  const int tap_col_step = static_cast<int>(phase_cols.tap_step) * t.group;
  for (int row = first_row; row <= last_row; ++row) {
    int tap_row[kRows];  // where the filter row joining patch row `row` to output row p0 + i starts, or -1
    bool read = false;
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      tap_row[i] = i < rows_out && remainder[i] == 0 && quotient[i] >= 0 && quotient[i] < R
                       ? tap_row0 + quotient[i] * tap_row_step
                       : -1;
      read = read || tap_row[i] >= 0;
      if (++remainder[i] == dh) {
        remainder[i] = 0;
        ++quotient[i];
      }
    }
    if (!read) continue;
    const Vector* const line = patch + row * t.patch_w * kSlots + slot;
    SourceWindow<T, kWidth, int> window;
    for (int j = 0, tap_col = tap_col0; j < S; ++j, tap_col += tap_col_step) {
      window.move_to(first_col + j * dw, sw, [&](int col) { return to_lanes(simt::ld_shared(line + col * kSlots)); });
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        if (tap_row[i] >= 0) tile_out.add(i, to_lanes(simt::ld_shared(taps + tap_row[i] + tap_col)), window);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
    if (i < rows_out) {
      tile_out.store(i, out[i * rows.phases() * cols.output * vectors].v, cols.phases() * q.channels, cols_out);
    }
  }
}

}  // namespace convkernels::cuda
