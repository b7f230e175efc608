// Depthwise convolution, forward: y[n, k] = bias[k] + x[n, k / M] (*) w[k], M = K / C.
//
// Tiling (depthwise_tile.cuh): each z-slice of a block computes a tile_h x tile_w tile of one output
// plane (n, k), each thread kVec adjacent outputs of a row, e.g. 32 x 8 threads -> 128 x 8 outputs
// for wide planes, 14 x 14 threads -> 56 x 14 for 56-wide ones, several planes per block for small
// ones. The slice stages the expanded filter of k once and the input patch of the tile with its
// halo, ((tile_h - 1) * stride_h + (R - 1) * dil_h + 1) rows of stride_w phases, converted to acc_t
// and zero-padded; then every output is a sum of unit-stride correlations over that patch.
// The patch is staged in bands of filter rows only when the whole filter's halo would not fit.
#pragma once

#include <ATen/OpMathType.h>

#include "depthwise_mma.cuh"
#include "depthwise_staging.cuh"
#include "depthwise_tile.cuh"
#include "launch.cuh"

namespace convkernels::cuda {

template <typename T>
__global__ void
    depthwise_fprop_kernel(Grid first, ConvParams p, depthwise::PlaneTiling t,
                           const T* __restrict__ x, const T* __restrict__ w,
                           const T* __restrict__ bias, T* __restrict__ y) {
  using namespace depthwise;
  using acc_t = at::opmath_type<T>;
  SIMT_DYNAMIC_SHARED(acc_t, shared);
  const TileCoord at(t, first);
  const int R = static_cast<int>(p.R), S = static_cast<int>(p.S);
  const int stride_h = static_cast<int>(p.stride_h), phases = static_cast<int>(p.stride_w);
  const int dil_h = static_cast<int>(p.dil_h), dil_w = static_cast<int>(p.dil_w);
  const int filter_row_len = phases * t.taps_padded;  // one expanded filter row, all phases
  acc_t* const filter = shared + threadIdx.z * t.slice_len;
  acc_t* const tile = filter + t.tile_offset;

  const bool active = at.plane < p.N * p.K;
  const int64_t n = at.plane / p.K, k = at.plane % p.K;
  const int64_t c = k / (p.K / p.C);

  // Expanded tap (f, o) of a filter row is column s with s * dil_w == o * stride_w + f.
  for (int i = at.thread; i < R * filter_row_len; i += at.slice_threads) {
    const int r = i / filter_row_len;
    const int f = i % filter_row_len / t.taps_padded;
    const int s = tap_at(i % t.taps_padded * phases + f, dil_w, S);
    simt::st_shared(filter + i, active && s >= 0
                                    ? static_cast<acc_t>(simt::ld_global(w + (k * R + r) * S + s))
                                    : acc_t(0));
  }

  const int64_t p0 = int64_t{at.tile_row} * t.tile_h, q0 = int64_t{at.tile_col} * t.tile_w;
  const T* const x_plane = active ? x + (n * p.C + c) * p.H * p.W : nullptr;
  acc_t acc[kVec];
  const acc_t b = active && bias != nullptr ? static_cast<acc_t>(simt::ld_global(bias + k)) : acc_t(0);
#pragma unroll
  for (int j = 0; j < kVec; ++j) acc[j] = b;

  for (int r0 = 0; r0 < R; r0 += t.band) {
    const int band = min(t.band, R - r0);
    __syncthreads();  // the previous band is consumed
    stage_tile(x_plane, p.H, p.W, p0 * stride_h - p.pad_h + int64_t{r0} * dil_h,
               q0 * phases - p.pad_w, phases, t.phase_len, t.row_len, t.used_len,
               (t.tile_h - 1) * stride_h + (band - 1) * dil_h + 1, at.thread, at.slice_threads,
               tile);
    __syncthreads();
    for (int r = 0; r < band; ++r) {
      const int row = static_cast<int>(threadIdx.y) * stride_h + r * dil_h;
      for (int f = 0; f < phases; ++f) {
        correlate(tile + row * t.row_len + f * t.phase_len + threadIdx.x * kVec,
                  filter + (r0 + r) * filter_row_len + f * t.taps_padded, t.taps, acc);
      }
    }
  }

  T* const y_plane = active ? y + (n * p.K + p.output_channel(c, k - c * (p.K / p.C))) * p.P * p.Q : y;
  // Whole planes, their channels unshuffled: the block's y planes are consecutive, one run.
  if (t.block_run) {
    const int64_t first_plane = at.plane - threadIdx.z;
    const int planes = static_cast<int>(min(int64_t{blockDim.z}, p.N * p.K - first_plane));
    store_planes(y + first_plane * p.P * p.Q, planes, static_cast<int>(p.P), static_cast<int>(p.Q), t.out_staging, acc,
                 shared + t.tile_offset, t.slice_len);
    return;
  }
  if (t.rows_run) {
    store_tile_rows(y_plane + p0 * p.Q, p.Q, active ? min(int64_t{t.tile_h}, p.P - p0) : 0, p.Q, t.out_staging, acc,
                    tile, at.thread, at.slice_threads);
    return;
  }
  const int64_t oh = p0 + threadIdx.y, ow = q0 + threadIdx.x * kVec;
  const bool valid = active && oh < p.P;
  store_outputs(valid ? y_plane + oh * p.Q + ow : y, 1, p.Q - ow, valid, acc);
}

template <typename T>
void depthwise_fprop(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                     cudaStream_t stream) {
  using namespace depthwise;
  using acc_t = at::opmath_type<T>;
  if (depthwise_mma</*kInputGradient=*/false>(p, x, w, bias, y, stream)) return;
  // Expanded taps per phase: the dilated filter span, split over stride_w phases.
  const int64_t taps = ceil_div((p.S - 1) * p.dil_w + 1, p.stride_w);
  const PlaneTiling t = plane_tiling(
      p.N * p.K, p.P, p.Q, p.R, taps, p.stride_w, p.R * p.stride_w, p.stride_h, 1, p.Q,
      /*consecutive_planes=*/!p.shuffle_output, sizeof(T), sizeof(acc_t), [&](int64_t tile_h, int64_t band) {
        return (tile_h - 1) * p.stride_h + (band - 1) * p.dil_h + 1;
      });
  launch_grid(depthwise_fprop_kernel<T>, Grid{t.blocks}, t.block, t.shared_bytes(sizeof(acc_t)),
              stream, p, t, x, w, bias, y);
}

}  // namespace convkernels::cuda
