// depthwise_nhwc_staged_kernel: the channels_last depthwise correlation at multiplier 1 and the full
// channel vector width, from tiles staged in shared memory (StagedTiling, staged_tiling.h):
//   y[n, p, q, k] = bias[k] + sum over r, s of w[k, r, s] * x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, k].
// It serves the forward, and at unit stride the input gradient, which is this correlation of dy
// with the flipped filter (depthwise_nhwc.cu states that problem).
//
// A block stages, in one pass of 16-byte loads with several in flight, the x patch of its
// sub-tiles (zeros outside the plane) and its vectors' filter taps; after the one barrier each
// thread computes an OutputTile (output_tile.cuh) from there, walking the patch rows its outputs
// read and along each the taps through a SourceWindow, as the register-run kernel does from global
// memory. Thread t holds slot t % kSlots of its pixels, so a quarter-warp reads whole staged lines.
#pragma once

#include "../../conv_params.h"
#include "../depthwise_staging.cuh"
#include "../launch.cuh"
#include "output_tile.cuh"
#include "staged_tiling.h"

namespace convkernels::cuda {

template <typename T>
__global__ void depthwise_nhwc_staged_kernel(Grid first, ConvParams p, depthwise_nhwc::StagedTiling t,
                                             const T* __restrict__ x, const T* __restrict__ filter,
                                             const T* __restrict__ bias, T* __restrict__ y) {
  using namespace depthwise_nhwc;
  using acc_t = at::opmath_type<T>;
  constexpr int kWidth = kFullWidth<T>;
  using Vector = ChannelVector<T, kWidth>;
  SIMT_DYNAMIC_SHARED(Vector, shared);
  const Vector* const patch = shared;  // pixel (row, col), slot i at [(row * patch_w + col) * kSlots + i]
  const Vector* const taps = shared + t.patch_len();  // tap r * S + s, vector g at [tap * group + g]

  const int64_t block = block_index(first).x;
  const int64_t vectors = p.K / kWidth, vector0 = block % t.channel_groups * t.group;
  // A thread's slot is the same in staging (blockDim.x and the patch are whole lines) and after.
  const int thread = threadIdx.x, slot = thread % kSlots, g = slot % t.group;
  const int64_t tile = block / t.channel_groups * t.sub_tiles() + slot / t.group;
  const int64_t n = tile / (t.tiles_h * t.tiles_w);
  const int64_t tile_p0 = tile / t.tiles_w % t.tiles_h * t.tile_h, tile_q0 = tile % t.tiles_w * t.tile_w;
  const bool valid = tile < t.tiles && vector0 + g < vectors;
  const int64_t k = (vector0 + g) * kWidth;

  const int64_t top = tile_p0 * p.stride_h - p.pad_h, left = tile_q0 * p.stride_w - p.pad_w;
  const int patch_len = t.patch_len();
  depthwise::in_batches(
      patch_len + static_cast<int>(p.R * p.S) * t.group, thread, static_cast<int>(blockDim.x),
      [&](int i) {
        if (i >= patch_len) {
          const int tap = (i - patch_len) / t.group;
          return vector0 + g < vectors ? simt::ld_global(reinterpret_cast<const Vector*>(filter + tap * p.K + k))
                                       : Vector{};
        }
        const int pixel = i / kSlots;
        const int64_t row = top + pixel / t.patch_w, col = left + pixel % t.patch_w;
        return valid && row >= 0 && row < p.H && col >= 0 && col < p.W
                   ? simt::ld_global(reinterpret_cast<const Vector*>(x + ((n * p.H + row) * p.W + col) * p.C + k))
                   : Vector{};
      },
      [&](int i, const Vector& value) { simt::st_shared(shared + i, value); });
  __syncthreads();

  const int work = thread / kSlots, row_group = work / t.runs(), run = work % t.runs();
  const int64_t p0 = tile_p0 + row_group * kRows, q0 = tile_q0 + run * kRun;
  if (!valid || p0 >= p.P || q0 >= p.Q) return;
  OutputTile<T, kWidth> tile_out(bias != nullptr ? load_channels<T, kWidth>(bias + k) : Lanes<acc_t, kWidth>{});
  // Patch sizes are small: the walk is in int.
  const int R = static_cast<int>(p.R), S = static_cast<int>(p.S);
  const int sh = static_cast<int>(p.stride_h), dh = static_cast<int>(p.dil_h);
  const int sw = static_cast<int>(p.stride_w), dw = static_cast<int>(p.dil_w);
  // Output row p0 + i reads patch row first_row + i * sh + r * dh through filter row r. Walking the
  // rows, offset[i] = row - first_row - i * sh is kept as quotient and remainder of dh: no division
  // per row.
  const int first_row = row_group * kRows * sh, last_row = first_row + (kRows - 1) * sh + (R - 1) * dh;
  int quotient[kRows], remainder[kRows];
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
    quotient[i] = -((i * sh + dh - 1) / dh);  // floor(-i * sh / dh)
    remainder[i] = quotient[i] * -dh - i * sh;
  }
  const int first_col = run * kRun * sw;
  for (int row = first_row; row <= last_row; ++row) {
    int r[kRows];  // the filter row joining patch row `row` to output row p0 + i, or -1
    bool read = false;
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      r[i] = p0 + i < p.P && remainder[i] == 0 && quotient[i] >= 0 && quotient[i] < R ? quotient[i] : -1;
      read = read || r[i] >= 0;
      if (++remainder[i] == dh) {
        remainder[i] = 0;
        ++quotient[i];
      }
    }
    if (!read) continue;
    const Vector* const line = patch + row * t.patch_w * kSlots + slot;
    SourceWindow<T, kWidth, int> window;
    for (int s = 0; s < S; ++s) {
      window.move_to(first_col + s * dw, sw, [&](int col) { return to_lanes(simt::ld_shared(line + col * kSlots)); });
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        if (r[i] >= 0) tile_out.add(i, to_lanes(simt::ld_shared(taps + (r[i] * S + s) * t.group + g)), window);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
    if (p0 + i < p.P) tile_out.store(i, y + ((n * p.P + p0 + i) * p.Q + q0) * p.K + k, p.K, p.Q - q0);
  }
}

}  // namespace convkernels::cuda
