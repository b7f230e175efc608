// depthwise_nhwc_wgrad_kernel: the channels_last depthwise weight gradient, first pass,
//   partial[split, r*S + s, k] = sum over the split's positions (n, p, q) of
//                                dy[n, p, q, k] * x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, k / M],
// in acc_t, its channels placed as PartialRow says. A block (WgradTiling) walks its split's
// (n, position tile) pairs; per pair its threads stage the dy tile and the x patch of its group of
// channel vectors into shared memory, one loop over both, in 16-byte vectors (kWidth channels of a
// pixel), the patch's rows and columns grouped by stride phase where the group is less than a
// wavefront (PhaseOrder). Then a thread per (channel vector, filter row, run of kTapCols taps,
// lane) sums the products of every lanes-th position of the tile; adjacent threads take adjacent
// channel vectors, then adjacent positions, so a warp's shared reads are whole 128-byte lines. At
// the end the lanes are summed in lane order through shared memory.
// depthwise_nhwc_wgrad_reduce_kernel then sums the splits in order.
// kWidth > 1 only at multiplier 1.
#pragma once

#include "../../conv_params.h"
#include "../depthwise_staging.cuh"
#include "../launch.cuh"
#include "channel_vector.cuh"
#include "wgrad_split.h"

namespace convkernels::cuda {

template <typename T, int kWidth>
__global__ void depthwise_nhwc_wgrad_kernel(Grid first, ConvParams p, depthwise_nhwc::WgradTiling t,
                                            const T* __restrict__ x, const T* __restrict__ dy,
                                            at::opmath_type<T>* __restrict__ partial) {
  using namespace depthwise_nhwc;
  using acc_t = at::opmath_type<T>;
  using Vector = ChannelVector<T, kWidth>;
  SIMT_DYNAMIC_SHARED(Vector, shared);
  Vector* const x_patch = shared;
  Vector* const dy_tile = shared + t.patch_len();

  int64_t block = block_index(first).x;
  const int64_t vector0 = block % t.channel_groups * t.group;
  block /= t.channel_groups;
  const int64_t item0 = block % t.item_groups * t.items;
  const int64_t split = block / t.item_groups;
  const int64_t vectors = p.K / kWidth, multiplier = p.K / p.C;

  const int thread = threadIdx.x;
  const int g = thread % t.group, lane = thread / t.group % t.lanes, local_item = thread / (t.group * t.lanes);
  const int64_t item = item0 + local_item;
  const int64_t r = item / t.row_chunks, s0 = item % t.row_chunks * kTapCols;
  const int cols = static_cast<int>(min(p.S - s0, int64_t{kTapCols}));
  const bool works = thread < t.threads() && r < p.R && vector0 + g < vectors;

  // The patch slots of the thread's filter row and taps, at position (0, 0).
  const int row_slot = t.patch_rows.slot(r * p.dil_h);
  int col_slots[kTapCols];
#pragma unroll
  for (int c = 0; c < kTapCols; ++c) col_slots[c] = t.patch_cols.slot((s0 + c) * p.dil_w);
  Lanes<acc_t, kWidth> acc[kTapCols] = {};
  const int64_t tiles = t.tiles_h * t.tiles_w;
  const int patch_len = t.patch_len(), tile_len = t.tile_h * t.tile_w * t.group;
  const int64_t begin = split * t.pairs_per_split, end = min(begin + t.pairs_per_split, t.pairs);
  for (int64_t pair = begin; pair < end; ++pair) {
    const int64_t n = pair / tiles, p0 = pair % tiles / t.tiles_w * t.tile_h, q0 = pair % tiles % t.tiles_w * t.tile_w;
    const int64_t h0 = p0 * p.stride_h - p.pad_h, w0 = q0 * p.stride_w - p.pad_w;
    __syncthreads();  // the previous tile is consumed
    // x patch values, then dy tile values: (pixel, vector of the group), zeros outside the planes.
    depthwise::in_batches(
        patch_len + tile_len, thread, static_cast<int>(blockDim.x),
        [&](int i) {
          const bool in_x = i < patch_len;
          const int at = in_x ? i : i - patch_len, pixel = at / t.group;
          const int64_t v = vector0 + at % t.group;
          const int col_slot = pixel % t.row_pitch;
          const int64_t row = in_x ? h0 + t.patch_rows.index(pixel / t.row_pitch) : p0 + pixel / t.tile_w;
          const int64_t col = in_x ? w0 + t.patch_cols.index(col_slot) : q0 + pixel % t.tile_w;
          if (v >= vectors || row < 0 || col < 0 || (in_x && col_slot >= t.patch_cols.extent())) return Vector{};
          if (in_x) {
            return row < p.H && col < p.W ? simt::ld_global(reinterpret_cast<const Vector*>(
                                                x + ((n * p.H + row) * p.W + col) * p.C + v * kWidth / multiplier))
                                          : Vector{};
          }
          return row < p.P && col < p.Q
                     ? simt::ld_global(reinterpret_cast<const Vector*>(dy + ((n * p.P + row) * p.Q + col) * p.K + v * kWidth))
                     : Vector{};
        },
        [&](int i, const Vector& value) { simt::st_shared(shared + i, value); });
    __syncthreads();
    if (!works) continue;
    for (int position = lane; position < t.tile_h * t.tile_w; position += t.lanes) {
      const int pp = position / t.tile_w, qq = position % t.tile_w;
      if (p0 + pp >= p.P || q0 + qq >= p.Q) continue;
      const Vector d = simt::ld_shared(dy_tile + position * t.group + g);
      const Vector* const src =
          x_patch + ((pp * t.patch_rows.step + row_slot) * t.row_pitch + qq * t.patch_cols.step) * t.group + g;
      simt::note_fma<acc_t>(int64_t{kWidth} * cols);
#pragma unroll
      for (int c = 0; c < kTapCols; ++c) {
        if (c >= cols) break;
        const Vector xv = simt::ld_shared(src + col_slots[c] * t.group);
#pragma unroll
        for (int i = 0; i < kWidth; ++i) {
          acc[c].v[i] += static_cast<acc_t>(d.v[i]) * static_cast<acc_t>(xv.v[i]);
        }
      }
    }
  }

  // Sum the lanes of each (item, tap, vector) in lane order, through 16-byte chunks of the sums in
  // shared memory, sums[tap][item][chunk][lane][vector] (WgradTiling::sums_pitch): adjacent
  // threads store adjacent chunks, and read them so where a group is a whole wavefront.
  constexpr int kPerChunk = sums_per_chunk<acc_t>(kWidth), kChunks = kWidth / kPerChunk;
  using Chunk = ChannelVector<acc_t, kPerChunk>;
  Chunk* const sums = reinterpret_cast<Chunk*>(shared);
  const auto sum_at = [&](int c, int sum_item, int sum_lane, int h, int sum_g) {
    return sums + (c * t.items + sum_item) * t.sums_pitch + (h * t.lanes + sum_lane) * t.group + sum_g;
  };
  __syncthreads();
  if (thread < t.threads()) {
#pragma unroll
    for (int c = 0; c < kTapCols; ++c) {
#pragma unroll
      for (int h = 0; h < kChunks; ++h) {
        Chunk chunk;
#pragma unroll
        for (int i = 0; i < kPerChunk; ++i) chunk.v[i] = acc[c].v[h * kPerChunk + i];
        simt::st_shared(sum_at(c, local_item, lane, h, g), chunk);
      }
    }
  }
  __syncthreads();
  const PartialRow layout = PartialRow::of<acc_t>(p.K, kWidth);
  for (int e = thread; e < t.items * kTapCols * t.group; e += blockDim.x) {
    const int eg = e % t.group, e_item = e / t.group % t.items, c = e / (t.group * t.items);
    const int64_t sum_item = item0 + e_item, sum_r = sum_item / t.row_chunks;
    const int64_t s = sum_item % t.row_chunks * kTapCols + c, v = vector0 + eg;
    if (sum_r >= p.R || s >= p.S || v >= vectors) continue;
    // Indexed as chunks, which keeps nvcc's 16-byte stores (as OutputTile::store).
    auto* const row = reinterpret_cast<ChannelVector<acc_t, kPerChunk>*>(
        partial + (split * p.R * p.S + sum_r * p.S + s) * p.K);
#pragma unroll
    for (int h = 0; h < kChunks; ++h) {
      Lanes<acc_t, kPerChunk> sum = {};
      for (int l = 0; l < t.lanes; ++l) {
        const Chunk part = simt::ld_shared(sum_at(c, e_item, l, h, eg));
#pragma unroll
        for (int i = 0; i < kPerChunk; ++i) sum.v[i] += part.v[i];
      }
      store_channels<acc_t, kPerChunk>(row[layout.chunk_at(v * kWidth, h)].v, sum);
    }
  }
}

// dw[k, 0, r, s] = sum over splits, in split order, of the partial sums of (r*S + s, k). A block
// (ReduceTile) takes `positions` positions of the partial rows and up to kReduceTaps taps: its
// threads read the partials along the rows (adjacent threads, adjacent positions), and write dw,
// where a channel's taps are adjacent, after a transpose in shared memory (adjacent threads,
// adjacent taps, then the next channel's): both sides whole sectors, where a thread per partial
// sum wrote dw at a stride of R*S values.
template <typename T>
__global__ void depthwise_nhwc_wgrad_reduce_kernel(Grid first, depthwise_nhwc::ReduceTile tile, int64_t splits,
                                                   int64_t taps, depthwise_nhwc::PartialRow layout, int64_t K,
                                                   const at::opmath_type<T>* __restrict__ partial,
                                                   T* __restrict__ dw) {
  using acc_t = at::opmath_type<T>;
  __shared__ acc_t sums[depthwise_nhwc::ReduceTile::kSums];  // [position][tap], an odd pitch
  const int64_t block = block_index(first).x, tap_tiles = tile.tap_tiles(taps);
  const int64_t k0 = block / tap_tiles * tile.positions, t0 = block % tap_tiles * tile.taps;
  const int tile_taps = static_cast<int>(min(int64_t{tile.taps}, taps - t0)), pitch = tile_taps | 1;
  const int items = tile.positions * tile_taps;
  for (int e = threadIdx.x; e < items; e += blockDim.x) {
    const int position = e % tile.positions, tap = e / tile.positions;
    const int64_t k = k0 + position;
    acc_t sum = 0;
    if (k < K) {
      for (int64_t sp = 0; sp < splits; ++sp) sum += simt::ld_global(partial + (sp * taps + t0 + tap) * K + k);
    }
    simt::st_shared(sums + position * pitch + tap, sum);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < items; e += blockDim.x) {
    const int position = e / tile_taps, tap = e % tile_taps;
    const int64_t k = k0 + position;
    if (k < K) {
      simt::st_global(dw + layout.channel_at(k) * taps + t0 + tap,
                      static_cast<T>(simt::ld_shared(sums + position * pitch + tap)));
    }
  }
}

// Sums the splits of `partial` ([splits][taps][K] in `layout`) into dw ([K][taps]).
template <typename T>
void depthwise_wgrad_reduce(int64_t splits, int64_t taps, depthwise_nhwc::PartialRow layout, int64_t K,
                            const at::opmath_type<T>* partial, T* dw, cudaStream_t stream) {
  const auto tile = depthwise_nhwc::ReduceTile::of(taps);
  launch_grid(depthwise_nhwc_wgrad_reduce_kernel<T>, Grid{tile.blocks(K, taps)},
              dim3(depthwise_nhwc::ReduceTile::kThreads), 0, stream, tile, splits, taps, layout, K, partial, dw);
}

}  // namespace convkernels::cuda
