// Depthwise convolution, weight gradient:
//   dw[k, 0, r, s] = sum over n, p, q of dy[n, k, p, q] * x[n, k / M, p * stride_h - pad_h + r * dil_h,
//                                                              q * stride_w - pad_w + s * dil_w].
//
// One block per (k, group of filter rows, group of expanded tap columns) reduces over all of n, p, q,
// so every dw element is produced by one block in a fixed order: deterministic, no atomics. The
// filter rows are grouped just finely enough for about kTargetBlocks blocks (small K) while
// sharing each staged x row between as many filter rows as possible (large K).
//
// The block walks the (n, position tile) pairs in order. For each it stages the tile_h x tile_w dy
// tile and the x patch those positions read through the block's filter rows (stride_w phases, as in
// depthwise_tile.cuh). Each thread owns kVec adjacent expanded taps of one filter row (a "slot")
// and one "lane" of the tile's (row, segment) items; an item is one correlate() of a seg_len run of
// dy with the x row: acc[v] += sum_q dy[q] * x[q + o0 + v]. At the end, the lanes of a slot are
// summed in lane order through shared memory.
#pragma once

#include <ATen/OpMathType.h>

#include "depthwise_staging.cuh"
#include "depthwise_tile.cuh"
#include "launch.cuh"

namespace convkernels::cuda {
namespace depthwise {

constexpr int64_t kTargetBlocks = 1024;  // a few waves on current GPUs
constexpr int kMaxSegment = 4 * kVec;    // positions per item

struct WgradTiling {
  int phases;                   // stride_w
  int taps_padded;              // expanded taps per phase, a multiple of kVec
  int row_slots;                // slots per filter row: stride_w * taps_padded / kVec
  int col_group, col_groups;    // slots of a filter row per block; blocks along the row
  int row_group, row_groups;    // filter rows per block; blocks along the filter
  int slots, lanes;             // slots == row_group * col_group; slots * lanes <= kBlockThreads
  int tile_h, tile_w, seg_len;  // position tile; items are (tile row, seg_len run)
  int phase_len;                // x patch positions per phase: tile_w + taps_padded
  int patch_rows;               // x patch rows
  int64_t tiles_h, tiles_w;     // position tiles per plane
  int64_t blocks;               // one per (k, row group, column group)

  C10_HOST_DEVICE int x_len() const { return patch_rows * phases * phase_len; }
  int shared_len() const {
    return std::max(x_len() + tile_h * tile_w, slots * lanes * kVec);
  }
  std::size_t shared_bytes(std::size_t acc_size) const {
    return acc_size * static_cast<std::size_t>(shared_len());
  }
};

inline WgradTiling wgrad_tiling(const ConvParams& p, std::size_t acc_size) {
  WgradTiling t{};
  t.phases = static_cast<int>(p.stride_w);
  t.taps_padded = static_cast<int>(round_up(ceil_div((p.S - 1) * p.dil_w + 1, p.stride_w), kVec));
  t.row_slots = t.phases * t.taps_padded / kVec;
  t.col_group = std::min(t.row_slots, kBlockThreads);
  t.col_groups = static_cast<int>(ceil_div(t.row_slots, t.col_group));
  const int64_t wanted_row_groups = ceil_div(kTargetBlocks, p.K * t.col_groups);
  t.row_group = static_cast<int>(std::min<int64_t>(ceil_div(p.R, std::min(p.R, wanted_row_groups)),
                                                   kBlockThreads / t.col_group));

  t.seg_len = static_cast<int>(std::min<int64_t>(kMaxSegment, round_up(p.Q, kVec)));
  t.tile_w = static_cast<int>(std::min<int64_t>(round_up(p.Q, t.seg_len), 64));
  t.phase_len = t.tile_w + t.taps_padded;
  const auto fit = [&](int64_t max_tile_h) {
    t.row_groups = static_cast<int>(ceil_div(p.R, t.row_group));
    t.slots = t.row_group * t.col_group;
    t.lanes = kBlockThreads / t.slots;
    // About four items per lane (fewer barriers per FMA), within the plane.
    const int64_t wanted_rows = ceil_div(4 * t.lanes, t.tile_w / t.seg_len);
    t.tile_h = static_cast<int>(std::clamp<int64_t>(wanted_rows, 1, std::min(p.P, max_tile_h)));
    t.patch_rows = static_cast<int>((t.tile_h - 1) * p.stride_h + (t.row_group - 1) * p.dil_h + 1);
    return t.shared_bytes(acc_size) <= kSharedBudget;
  };
  // Large strides or dilations only: shorter tiles, then fewer filter rows per block.
  for (int64_t max_tile_h = 64; !fit(max_tile_h);) {
    if (max_tile_h > 1) {
      max_tile_h /= 2;
    } else if (t.row_group > 1) {
      --t.row_group;
    } else {
      break;
    }
  }
  TORCH_CHECK(t.shared_bytes(acc_size) <= 227 * 1024,
              "depthwise_wgrad: the filter extent is too large for a shared-memory tile (",
              t.shared_bytes(acc_size), " bytes)");
  t.tiles_h = ceil_div(p.P, t.tile_h);
  t.tiles_w = ceil_div(p.Q, t.tile_w);
  t.blocks = p.K * t.row_groups * t.col_groups;
  return t;
}

}  // namespace depthwise

template <typename T>
__global__ void
    depthwise_wgrad_kernel(Grid first, ConvParams p, depthwise::WgradTiling t,
                           const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ dw) {
  using namespace depthwise;
  using acc_t = at::opmath_type<T>;
  SIMT_DYNAMIC_SHARED(acc_t, shared);
  const int R = static_cast<int>(p.R), S = static_cast<int>(p.S);
  const int stride_h = static_cast<int>(p.stride_h), phases = static_cast<int>(p.stride_w);
  const int dil_h = static_cast<int>(p.dil_h), dil_w = static_cast<int>(p.dil_w);
  acc_t* const x_patch = shared;
  acc_t* const dy_tile = shared + t.x_len();

  const int64_t block = block_index(first).x;
  const int64_t k = block / (t.row_groups * t.col_groups);
  const int r0 = static_cast<int>(block / t.col_groups % t.row_groups) * t.row_group;
  const int col_slot0 = static_cast<int>(block % t.col_groups) * t.col_group;
  const int64_t c = k / (p.K / p.C);

  // This thread's slot: filter row r0 + slot_row, phase f, expanded taps o0 .. o0 + kVec.
  const int thread = threadIdx.x;
  const int slot = thread % t.slots, lane = thread / t.slots;
  const int slot_row = slot / t.col_group;
  const int row_slot = col_slot0 + slot % t.col_group;
  const int f = row_slot / (t.taps_padded / kVec);
  const int o0 = row_slot % (t.taps_padded / kVec) * kVec;
  const bool works = lane < t.lanes && r0 + slot_row < R && row_slot < t.row_slots;

  acc_t acc[kVec] = {};
  const int segs = t.tile_w / t.seg_len;
  for (int64_t n = 0; n < p.N; ++n) {
    const T* const x_plane = x + (n * p.C + c) * p.H * p.W;
    const T* const dy_plane = dy + (n * p.K + k) * p.P * p.Q;
    for (int64_t tile = 0; tile < t.tiles_h * t.tiles_w; ++tile) {
      const int64_t p0 = tile / t.tiles_w * t.tile_h, q0 = tile % t.tiles_w * t.tile_w;
      __syncthreads();  // the previous tile is consumed
      stage_tile(x_plane, p.H, p.W, p0 * stride_h - p.pad_h + int64_t{r0} * dil_h,
                 q0 * phases - p.pad_w, phases, t.phase_len, t.phase_len, t.patch_rows, thread,
                 kBlockThreads, x_patch);
      stage_tile(dy_plane, p.P, p.Q, p0, q0, 1, t.tile_w, t.tile_w, t.tile_h, thread, kBlockThreads,
                 dy_tile);
      __syncthreads();
      if (!works) continue;
      for (int item = lane; item < t.tile_h * segs; item += t.lanes) {
        const int row = item / segs, seg = item % segs * t.seg_len;
        const int x_row = row * stride_h + slot_row * dil_h;
        correlate(x_patch + (x_row * phases + f) * t.phase_len + seg + o0,
                  dy_tile + row * t.tile_w + seg, t.seg_len, acc);
      }
    }
  }

  // Sum the lanes of each slot in lane order.
  acc_t* const partial = shared;
  __syncthreads();
  if (lane < t.lanes) {
#pragma unroll
    for (int v = 0; v < kVec; ++v) simt::st_shared(partial + (lane * t.slots + slot) * kVec + v, acc[v]);
  }
  __syncthreads();
  for (int e = thread; e < t.slots * kVec; e += kBlockThreads) {
    const int r = r0 + e / kVec / t.col_group;
    const int row_slot = col_slot0 + e / kVec % t.col_group;
    const int o = row_slot % (t.taps_padded / kVec) * kVec + e % kVec;
    const int s = tap_at(o * phases + row_slot / (t.taps_padded / kVec), dil_w, S);
    if (r >= R || row_slot >= t.row_slots || s < 0) continue;
    acc_t sum = 0;
    for (int l = 0; l < t.lanes; ++l) sum += simt::ld_shared(partial + l * t.slots * kVec + e);
    simt::st_global(dw + (k * R + r) * S + s, static_cast<T>(sum));
  }
}

template <typename T>
void depthwise_wgrad(const ConvParams& p, const T* x, const T* dy, T* dw, cudaStream_t stream) {
  using namespace depthwise;
  using acc_t = at::opmath_type<T>;
  const WgradTiling t = wgrad_tiling(p, sizeof(acc_t));
  launch_grid(depthwise_wgrad_kernel<T>, Grid{t.blocks}, dim3(kBlockThreads),
              t.shared_bytes(sizeof(acc_t)), stream, p, t, x, dy, dw);
}

}  // namespace convkernels::cuda
