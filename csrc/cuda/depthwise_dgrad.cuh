// Depthwise convolution, input gradient (conv_transpose2d's forward), as a gather:
//   dx[n, c, h, w] = bias[c] + sum over the M channels k of c and the taps (r, s) with
//                    p * stride_h - pad_h + r * dil_h == h and q * stride_w - pad_w + s * dil_w == w
//                    of w[k, r, s] * dy[n, k, p, q].
//
// Split dx into stride_h x stride_w phases, (h, w) = (i + th * stride_h, j + tw * stride_w). In
// phase (i, j) only the taps with (i + pad_h - r * dil_h) divisible by stride_h and
// (j + pad_w - s * dil_w) divisible by stride_w contribute, and they read dy at
// (th + e_r, tw + d_s) with e_r, d_s those quotients: within a phase, dgrad is a unit-stride
// correlation of dy with a sub-filter. So each z-slice of a block (depthwise_tile.cuh) computes a
// tile of one row phase i of one dx plane, kVec adjacent tw per thread, and kColumnPhases column
// phases j: all of them at stride_w 2 (a thread's outputs are then 2 * kVec adjacent dx values,
// stored as whole vectors, and the dy patch is staged once for both phases), one otherwise (its
// outputs stride_w apart). For each of the M channels k it stages k's dy patch with its halo and
// the column-expanded filter of k for each of its phases (expanded tap o holds the s with
// d_s == o + d_lo, d_lo the least d_s over all phases), and accumulates the filter rows r of the
// phase. Every dx element is written once, from registers; no atomics.
#pragma once

#include <type_traits>

#include <ATen/OpMathType.h>

#include "depthwise_mma.cuh"
#include "depthwise_staging.cuh"
#include "depthwise_tile.cuh"
#include "launch.cuh"

namespace convkernels::cuda {

template <typename T, int kColumnPhases>
__global__ void
    depthwise_dgrad_kernel(Grid first, ConvParams p, depthwise::PlaneTiling t, int d_lo,
                           const T* __restrict__ dy, const T* __restrict__ w,
                           const T* __restrict__ bias, T* __restrict__ dx) {
  using namespace depthwise;
  using acc_t = at::opmath_type<T>;
  SIMT_DYNAMIC_SHARED(acc_t, shared);
  const TileCoord at(t, first);
  const int R = static_cast<int>(p.R), S = static_cast<int>(p.S);
  const int stride_h = static_cast<int>(p.stride_h), stride_w = static_cast<int>(p.stride_w);
  const int dil_h = static_cast<int>(p.dil_h), dil_w = static_cast<int>(p.dil_w);
  const int pad_h = static_cast<int>(p.pad_h), pad_w = static_cast<int>(p.pad_w);
  acc_t* const filter = shared + threadIdx.z * t.slice_len;
  acc_t* const tile = filter + t.tile_offset;

  // at.plane enumerates (n, c, i, j0), the slice's column phases being j0 + jj for jj < kColumnPhases:
  // kColumnPhases is 1 or stride_w, so one of j0 and jj is always 0.
  const int column_groups = stride_w / kColumnPhases;
  const bool active = at.plane < p.N * p.C * stride_h * column_groups;
  const int j0 = static_cast<int>(at.plane % column_groups);
  const int i = static_cast<int>(at.plane / column_groups % stride_h);
  const int64_t nc = at.plane / (column_groups * stride_h);
  const int64_t M = p.K / p.C;
  const int filter_len = R * t.taps_padded;  // the expanded filter of one column phase

  // Filter row r reaches phase row i iff (i + pad_h - r * dil_h) is a multiple of stride_h; the
  // quotient e_r is its dy row offset, decreasing in r.
  const auto row_shift = [&](int r) { return i + pad_h - r * dil_h; };
  const auto reaches = [&](int r) { return row_shift(r) % stride_h == 0; };

  const int64_t th0 = int64_t{at.tile_row} * t.tile_h, tw0 = int64_t{at.tile_col} * t.tile_w;
  acc_t acc[kColumnPhases][kVec];
  const acc_t b =
      active && bias != nullptr ? static_cast<acc_t>(simt::ld_global(bias + nc % p.C)) : acc_t(0);
#pragma unroll
  for (int jj = 0; jj < kColumnPhases; ++jj) {
#pragma unroll
    for (int v = 0; v < kVec; ++v) acc[jj][v] = b;
  }

  for (int64_t m = 0; m < M; ++m) {
    const int64_t k = nc % p.C * M + m;
    const T* const dy_plane = active ? dy + (nc / p.C * p.K + k) * p.P * p.Q : nullptr;
    for (int r0 = 0; r0 < R; r0 += t.band) {
      const int r1 = min(R, r0 + t.band);
      // The dy rows the band's taps read: e of the first and the last tap of the band that reach.
      int first = r0, last = r1 - 1;
      while (first < r1 && !reaches(first)) ++first;
      while (last >= first && !reaches(last)) --last;
      const int e_hi = first < r1 ? row_shift(first) / stride_h : 0;
      const int e_lo = first < r1 ? row_shift(last) / stride_h : 0;
      const int rows = first < r1 ? t.tile_h + e_hi - e_lo : 0;

      __syncthreads();  // the previous band (and filter) is consumed
      if (r0 == 0) {
        for (int e = at.thread; e < kColumnPhases * filter_len; e += at.slice_threads) {
          const int j = j0 + e / filter_len;
          const int r = e % filter_len / t.taps_padded;
          const int s = tap_at(j + pad_w - (e % t.taps_padded + d_lo) * stride_w, dil_w, S);
          simt::st_shared(filter + e, active && s >= 0
                                          ? static_cast<acc_t>(simt::ld_global(w + (k * R + r) * S + s))
                                          : acc_t(0));
        }
      }
      stage_tile(dy_plane, p.P, p.Q, th0 + e_lo, tw0 + d_lo, 1, t.phase_len, t.row_len, t.used_len, rows,
                 at.thread, at.slice_threads, tile);
      __syncthreads();
      for (int r = first; r <= last; ++r) {
        if (!reaches(r)) continue;
        const int row = static_cast<int>(threadIdx.y) + row_shift(r) / stride_h - e_lo;
#pragma unroll
        for (int jj = 0; jj < kColumnPhases; ++jj) {
          correlate(tile + row * t.row_len + threadIdx.x * kVec,
                    filter + jj * filter_len + r * t.taps_padded, t.taps, acc[jj]);
        }
      }
    }
  }

  // Output v of phase jj is dx column j0 + jj + (tw + v) * stride_w: the thread's outputs, in
  // order, are column_groups apart.
  acc_t out[kVec * kColumnPhases];
#pragma unroll
  for (int v = 0; v < kVec; ++v) {
#pragma unroll
    for (int jj = 0; jj < kColumnPhases; ++jj) out[v * kColumnPhases + jj] = acc[jj][v];
  }
  // Whole planes at unit stride: the block's dx planes (n, c) are consecutive, one run.
  if (t.block_run) {
    const int64_t first_plane = at.plane - threadIdx.z;
    const int planes = static_cast<int>(min(int64_t{blockDim.z}, p.N * p.C - first_plane));
    store_planes(dx + first_plane * p.H * p.W, planes, static_cast<int>(p.H), static_cast<int>(p.W), t.out_staging,
                 out, shared + t.tile_offset, t.slice_len);
    return;
  }
  // A thread with every column phase, in a tile as wide as the plane: whole dx rows, stride_h apart.
  if (t.rows_run) {
    const int64_t rows = active ? min(int64_t{t.tile_h}, (p.H - i + stride_h - 1) / stride_h - th0) : 0;
    store_tile_rows(active ? dx + (nc * p.H + i + th0 * stride_h) * p.W : dx, stride_h * p.W, rows, p.W,
                    t.out_staging, out, tile, at.thread, at.slice_threads);
    return;
  }
  const int64_t h = i + (th0 + threadIdx.y) * stride_h;
  const int64_t w0 = j0 + (tw0 + threadIdx.x * kVec) * stride_w;
  const bool valid = active && h < p.H;
  store_outputs(valid ? dx + (nc * p.H + h) * p.W + w0 : dx, column_groups,
                (p.W - w0 + column_groups - 1) / column_groups, valid, out);
}

template <typename T>
void depthwise_dgrad(const ConvParams& p, const T* dy, const T* w, const T* bias, T* dx,
                     cudaStream_t stream) {
  using namespace depthwise;
  using acc_t = at::opmath_type<T>;
  if (depthwise_mma</*kInputGradient=*/true>(p, dy, w, bias, dx, stream)) return;
  // The column offsets d_s of every (phase j, tap s) pair that contributes; the expanded filter
  // spans d_lo .. d_hi in every phase.
  int64_t d_lo = INT64_MAX, d_hi = INT64_MIN;
  for (int64_t j = 0; j < p.stride_w; ++j) {
    for (int64_t s = 0; s < p.S; ++s) {
      const int64_t shift = j + p.pad_w - s * p.dil_w;
      if (shift % p.stride_w != 0) continue;
      d_lo = std::min(d_lo, shift / p.stride_w);
      d_hi = std::max(d_hi, shift / p.stride_w);
    }
  }
  // A thread takes both column phases at stride 2, the common strided case; wider strides keep
  // one phase a slice (their registers would grow by kVec accumulators a phase).
  const auto launch = [&](auto column_phases) {
    constexpr int kColumnPhases = decltype(column_phases)::value;
    const PlaneTiling t = plane_tiling(
        p.N * p.C * p.stride_h * (p.stride_w / kColumnPhases), ceil_div(p.H, p.stride_h),
        ceil_div(p.W, p.stride_w), p.R, d_hi - d_lo + 1, 1, p.R * kColumnPhases, 1, kColumnPhases,
        /*stored_w=*/kColumnPhases == p.stride_w ? p.W : 0,
        /*consecutive_planes=*/p.stride_h == 1 && p.stride_w == 1, sizeof(T), sizeof(acc_t),
        [&](int64_t tile_h, int64_t band) {
          return tile_h + (band - 1) * p.dil_h / p.stride_h;
        });
    launch_grid(depthwise_dgrad_kernel<T, kColumnPhases>, Grid{t.blocks}, t.block,
                t.shared_bytes(sizeof(acc_t)), stream, p, t, static_cast<int>(d_lo), dy, w, bias, dx);
  };
  if (p.stride_w == 2) {
    launch(std::integral_constant<int, 2>{});
  } else {
    launch(std::integral_constant<int, 1>{});
  }
}

}  // namespace convkernels::cuda
