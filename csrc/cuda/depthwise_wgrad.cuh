// Depthwise convolution, weight gradient:
//   dw[k, 0, r, s] = sum over n, p, q of dy[n, k, p, q] * x[n, k / M, p * stride_h - pad_h + r * dil_h,
//                                                              q * stride_w - pad_w + s * dil_w].
//
// The reduction runs over the (n, position tile) pairs of a plane in order. Each z-slice of a block
// owns one plane k; a block has several slices where planes are small. A block reduces one split,
// a contiguous range of those pairs: where a single range per plane would leave the GPU with too
// few blocks, the splits write acc_t partial sums in dw's order and
// depthwise_nhwc_wgrad_reduce_kernel adds them in split order. Every sum thus has an order fixed by
// the shape: deterministic, no atomics.
//
// Per pair the slice stages the dy tile and the x patch that all its filter rows read, once
// (depthwise_staging.cuh: 16-byte loads where rows are whole vectors; stride_w phases, as in
// depthwise_tile.cuh), x and dy by separate warps. Only a filter too tall or too wide for one
// block's threads or shared memory splits the rows (or the columns) over blocks. Each thread owns
// kVec adjacent expanded taps of one filter row (a "slot") and one "lane" of the tile's (row,
// segment) items; an item is one correlate() of a seg_len run of dy with the x row:
// acc[v] += sum_q dy[q] * x[q + o0 + v], on the taps that exist only. Adjacent lanes take adjacent
// rows of a segment (adjacent segments of a row, 32 values apart in a 64-wide tile, share banks
// whatever the pitch). The row pitches, and where lanes start (wgrad_tiling), are chosen for the
// fewest bank conflicts of these loads and of the staging's stores: none on the shapes we measure.
// At the end, the lanes of a slot are summed in lane order through shared memory.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/core/TensorBody.h>
#include <ATen/ops/empty.h>

#include "depthwise_mma_wgrad.cuh"
#include "depthwise_nhwc/wgrad_kernel.cuh"
#include "depthwise_staging.cuh"
#include "depthwise_tile.cuh"
#include "launch.cuh"

namespace convkernels::cuda {
namespace depthwise {

constexpr int64_t kTargetBlocks = 1024;  // a few waves on current GPUs
constexpr int kMaxSegment = 4 * kVec;    // positions per item
constexpr int kItemsPerLane = 4;         // per tile: fewer barriers per FMA, yet threads enough
constexpr int64_t kMinPairsPerSplit = 2;  // (n, tile) pairs: a split's partials stay a small part of its reads

struct WgradTiling {
  int phases;                   // stride_w
  int taps;                     // expanded taps per phase
  int taps_padded;              // their storage, a multiple of kVec
  int row_slots;                // slots per filter row: stride_w * taps_padded / kVec
  int col_group, col_groups;    // slots of a filter row per block; blocks along the row
  int row_group, row_groups;    // filter rows per block; blocks along the filter
  int slots, lanes;             // per slice: slots == row_group * col_group
  int lane_threads;             // threads from a lane to the next: slots or more; * lanes <= slice_threads
  int slice_threads, planes;    // block: slice_threads x planes threads, one plane per slice
  int x_threads;                // the slice's first threads, whole warps, stage x; the others dy
  int tile_h, tile_w, seg_len;  // position tile; items are (tile row, seg_len run)
  int x_phase_len, x_row_len;   // staged x: the pitch of a row's phases (conflict-free stores), of rows
  int dy_pitch;                 // staged dy: the pitch of rows
  int patch_rows;               // x patch rows
  int dy_offset;                // where a slice's dy tile starts; its x patch starts at kMaxVectorLength
  int slice_len;                // acc_t per slice
  int64_t tiles_h, tiles_w;     // position tiles per plane
  int64_t pairs, pairs_per_split, splits;  // (n, tile) pairs of a plane, and their splits
  int64_t plane_groups;         // ceil(K / planes)
  int64_t blocks;               // one per (split, row group, column group, plane group)

  std::size_t shared_bytes(std::size_t acc_size) const {
    return acc_size * static_cast<std::size_t>(slice_len) * planes;
  }
};

// Where thread `thread` of a slice correlates in pass `pass` over a tile's items: the offsets of its
// x and dy fragments in the slice's x patch and dy tile, or -1 if it has no item then.
struct ItemOffsets {
  int64_t x, dy;
};
inline ItemOffsets item_offsets(const WgradTiling& t, const ConvParams& p, int64_t thread, int64_t pass,
                                int64_t x_row_len, int64_t dy_pitch) {
  const int64_t slot = thread % t.lane_threads, lane = thread / t.lane_threads;
  const int64_t segs = t.tile_w / t.seg_len, item = lane + pass * t.lanes;
  const int64_t row_slot = slot % t.col_group, slot_row = slot / t.col_group;
  if (slot >= t.slots || lane >= t.lanes || item >= t.tile_h * segs || row_slot >= t.row_slots || slot_row >= p.R) {
    return {-1, -1};
  }
  const int64_t row = item % t.tile_h, seg = item / t.tile_h * t.seg_len;
  const int64_t f = row_slot / (t.taps_padded / kVec), o0 = row_slot % (t.taps_padded / kVec) * kVec;
  return {(row * p.stride_h + slot_row * p.dil_h) * x_row_len + f * t.x_phase_len + seg + o0,
          row * dy_pitch + seg};
}

inline int64_t next_power_of_two(int64_t v) {
  int64_t p = 1;
  while (p < v) p *= 2;
  return p;
}

inline WgradTiling wgrad_tiling(const ConvParams& p, std::size_t value_size, std::size_t acc_size) {
  WgradTiling t{};
  t.phases = static_cast<int>(p.stride_w);
  t.taps = static_cast<int>(ceil_div((p.S - 1) * p.dil_w + 1, p.stride_w));
  t.taps_padded = static_cast<int>(round_up(t.taps, kVec));
  t.row_slots = t.phases * t.taps_padded / kVec;
  t.col_group = std::min(t.row_slots, kBlockThreads);
  t.col_groups = static_cast<int>(ceil_div(t.row_slots, t.col_group));
  t.row_group = static_cast<int>(std::min<int64_t>(p.R, kBlockThreads / t.col_group));

  t.seg_len = static_cast<int>(std::min<int64_t>(kMaxSegment, round_up(p.Q, kVec)));
  t.tile_w = static_cast<int>(std::min<int64_t>(round_up(p.Q, t.seg_len), 64));
  const int segs = t.tile_w / t.seg_len;
  const auto fit = [&](int64_t max_tile_h) {
    t.row_groups = static_cast<int>(ceil_div(p.R, t.row_group));
    t.slots = t.row_group * t.col_group;
    t.tile_h = static_cast<int>(std::min(p.P, max_tile_h));
    t.patch_rows = static_cast<int>((t.tile_h - 1) * p.stride_h + (t.row_group - 1) * p.dil_h + 1);
    // Bank conflicts of the x (x_rows) or the dy loads at a pitch: every warp, every pass, every
    // fragment an item's correlate() loads (x: one more than dy's seg_len / kVec).
    const auto conflicts_at = [&](bool x_rows, int64_t pitch) {
      const int64_t passes = ceil_div(int64_t{t.tile_h} * segs, t.lanes);
      int64_t conflicts = 0;
      for (int64_t warp = 0; warp < t.slice_threads; warp += 32) {
        for (int64_t pass = 0; pass < passes; ++pass) {
          conflicts += bank_conflicts(
              [&](int64_t lane) {
                const ItemOffsets at = item_offsets(t, p, warp + lane, pass, pitch, pitch);
                return x_rows ? at.x : at.dy;
              },
              acc_size);
        }
      }
      return conflicts * (t.seg_len / kVec + (x_rows ? 1 : 0));
    };
    // x's rows: a row's phases, staged element by element where strided, at the pitch with the
    // fewest conflicting stores; the rows at the one with the fewest conflicting loads and stores.
    // Lanes `lane_threads` apart; threads for about kItemsPerLane items a lane, a whole number of
    // warps (the block's other threads take further planes). Returns the loads' conflicts.
    const int64_t x_used = t.tile_w + t.taps_padded;
    // Rows that are not whole 16-byte vectors, or strided, are staged element by element: their
    // pitch is chosen for the stores' conflicts too.
    const int64_t vector = 16 / static_cast<int64_t>(value_size);
    const bool x_by_element = t.phases > 1 || p.W % vector != 0, dy_by_element = p.Q % vector != 0;
    const auto x_reads = [&](int64_t pitch) {
      return conflicts_at(true, pitch) +
             (x_by_element ? element_staging_conflicts(t.patch_rows, t.phases, t.x_phase_len, x_used, pitch, acc_size)
                           : 0);
    };
    const auto arrange = [&](int lane_threads) {
      t.lane_threads = lane_threads;
      const int64_t wanted = lane_threads * ceil_div(int64_t{t.tile_h} * segs, kItemsPerLane);
      t.slice_threads = static_cast<int>(std::clamp<int64_t>(next_power_of_two(wanted), 64, kBlockThreads));
      t.lanes = t.slice_threads / lane_threads;
      if (t.phases == 1) {
        t.x_phase_len = t.x_row_len = staged_pitch(x_used, value_size, x_reads);
      } else {
        t.x_phase_len = phase_pitch(t.phases, x_used, acc_size);
        t.x_row_len = least_conflict_pitch(t.phases * t.x_phase_len, kVec, x_reads);
      }
      return conflicts_at(true, t.x_row_len);
    };
    // A lane's slots read x a fragment apart along a filter row and a pitch apart down the rows.
    // Where the lanes that one wavefront serves (a quarter-warp for float) hold slots of two lanes,
    // at two tile rows, some filters meet in banks whatever the pitch (7x7: 14 slots a lane, 45
    // conflicts a 32x32 tile): lanes then start a whole phase of lanes apart, the threads between
    // idle. The shared loads, not the threads, bound this kernel (two 16-byte loads per 16 FMAs).
    const int phase_lanes = static_cast<int>(128 / (kVec * acc_size));
    const int64_t packed = arrange(t.slots);
    const int spread = static_cast<int>(round_up(t.slots, phase_lanes));
    if (packed > 0 && spread != t.slots && arrange(spread) > packed) arrange(t.slots);
    t.dy_pitch = staged_pitch(t.tile_w, value_size, [&](int64_t pitch) {
      return conflicts_at(false, pitch) +
             (dy_by_element ? element_staging_conflicts(t.tile_h, 1, pitch, t.tile_w, pitch, acc_size) : 0);
    });
    // Warps for x and dy in proportion to their staged values.
    const int64_t x_values = int64_t{t.patch_rows} * t.x_row_len, dy_values = int64_t{t.tile_h} * t.dy_pitch;
    const int64_t warps = t.slice_threads / 32;
    t.x_threads = 32 * static_cast<int>(std::clamp<int64_t>(
                           (warps * x_values + (x_values + dy_values) / 2) / (x_values + dy_values), 1, warps - 1));
    // Free kMaxVectorLength values before each staged tile: a row may start that far before its vector.
    t.dy_offset = kMaxVectorLength + t.patch_rows * t.x_row_len + kMaxVectorLength;
    t.slice_len = static_cast<int>(round_up(
        std::max<int64_t>(t.dy_offset + int64_t{t.tile_h} * t.dy_pitch, int64_t{t.slice_threads} * kVec), kVec));
    t.planes = static_cast<int>(std::min<int64_t>(kBlockThreads / t.slice_threads, p.K));
    while (t.planes > 1 && t.shared_bytes(acc_size) > kSharedBudget) --t.planes;
    return t.shared_bytes(acc_size) <= kSharedBudget;
  };
  // Large planes, strides or dilations only: shorter tiles, then fewer filter rows per block.
  for (int64_t max_tile_h = 64; !fit(max_tile_h);) {
    if (max_tile_h > 1) {
      max_tile_h /= 2;
    } else if (t.row_group > 1) {
      --t.row_group;
    } else {
      break;
    }
  }
  check_shared_fits(t.shared_bytes(acc_size), "depthwise_wgrad");
  t.tiles_h = ceil_div(p.P, t.tile_h);
  t.tiles_w = ceil_div(p.Q, t.tile_w);
  t.pairs = p.N * t.tiles_h * t.tiles_w;
  t.plane_groups = ceil_div(p.K, t.planes);
  const int64_t per_split = t.plane_groups * t.row_groups * t.col_groups;
  const int64_t splits = std::clamp<int64_t>(ceil_div(kTargetBlocks, per_split), 1,
                                             std::max<int64_t>(1, t.pairs / kMinPairsPerSplit));
  t.pairs_per_split = ceil_div(t.pairs, splits);
  t.splits = ceil_div(t.pairs, t.pairs_per_split);
  t.blocks = per_split * t.splits;
  return t;
}

}  // namespace depthwise

// partials: null where t.splits == 1 (the block writes dw), else the splits' acc_t sums, split-major
// in dw's order.
template <typename T>
__global__ void depthwise_wgrad_kernel(Grid first, ConvParams p, depthwise::WgradTiling t,
                                       const T* __restrict__ x, const T* __restrict__ dy,
                                       at::opmath_type<T>* __restrict__ partials, T* __restrict__ dw) {
  using namespace depthwise;
  using acc_t = at::opmath_type<T>;
  SIMT_DYNAMIC_SHARED(acc_t, shared);
  const int R = static_cast<int>(p.R), S = static_cast<int>(p.S);
  const int stride_h = static_cast<int>(p.stride_h), phases = static_cast<int>(p.stride_w);
  const int dil_h = static_cast<int>(p.dil_h), dil_w = static_cast<int>(p.dil_w);
  acc_t* const slice = shared + threadIdx.y * t.slice_len;
  acc_t* const x_patch = slice + kMaxVectorLength;
  acc_t* const dy_tile = slice + t.dy_offset;

  int64_t block = block_index(first).x;
  const int64_t k = block % t.plane_groups * t.planes + threadIdx.y;
  block /= t.plane_groups;
  const int col_slot0 = static_cast<int>(block % t.col_groups) * t.col_group;
  block /= t.col_groups;
  const int r0 = static_cast<int>(block % t.row_groups) * t.row_group;
  const int64_t split = block / t.row_groups;
  const bool active = k < p.K;
  const int64_t c = k / (p.K / p.C);

  // This thread's slot: filter row r0 + slot_row, phase f, expanded taps o0 .. o0 + kVec.
  const int thread = threadIdx.x;
  const int slot = thread % t.lane_threads, lane = thread / t.lane_threads;
  const int slot_row = slot / t.col_group;
  const int row_slot = col_slot0 + slot % t.col_group;
  const int f = row_slot / (t.taps_padded / kVec);
  const int o0 = row_slot % (t.taps_padded / kVec) * kVec;
  const int outputs = min(kVec, t.taps - o0);  // the taps that exist
  const bool works = active && slot < t.slots && lane < t.lanes && r0 + slot_row < R && row_slot < t.row_slots;

  acc_t acc[kVec] = {};
  const int segs = t.tile_w / t.seg_len;
  const int64_t tiles = t.tiles_h * t.tiles_w;
  const int64_t begin = split * t.pairs_per_split, end = min(begin + t.pairs_per_split, t.pairs);
  for (int64_t pair = begin; pair < end; ++pair) {
    const int64_t n = pair / tiles, tile = pair % tiles;
    const int64_t p0 = tile / t.tiles_w * t.tile_h, q0 = tile % t.tiles_w * t.tile_w;
    const T* const x_plane = active ? x + (n * p.C + c) * p.H * p.W : nullptr;
    const T* const dy_plane = active ? dy + (n * p.K + k) * p.P * p.Q : nullptr;
    __syncthreads();  // the previous tile is consumed
    if (thread < t.x_threads) {
      stage_tile(x_plane, p.H, p.W, p0 * stride_h - p.pad_h + int64_t{r0} * dil_h, q0 * phases - p.pad_w,
                 phases, t.x_phase_len, t.x_row_len, t.tile_w + t.taps_padded, t.patch_rows, thread,
                 t.x_threads, x_patch);
    } else {
      stage_tile(dy_plane, p.P, p.Q, p0, q0, 1, t.dy_pitch, t.dy_pitch, t.tile_w, t.tile_h, thread - t.x_threads,
                 t.slice_threads - t.x_threads, dy_tile);
    }
    __syncthreads();
    if (!works) continue;
    for (int item = lane; item < t.tile_h * segs; item += t.lanes) {
      const int row = item % t.tile_h, seg = item / t.tile_h * t.seg_len;
      const int x_row = row * stride_h + slot_row * dil_h;
      correlate(x_patch + x_row * t.x_row_len + f * t.x_phase_len + seg + o0, dy_tile + row * t.dy_pitch + seg,
                t.seg_len, acc, outputs);
    }
  }

  // Sum the lanes of each slot in lane order.
  __syncthreads();
  if (slot < t.slots && lane < t.lanes) {
    Fragment<acc_t> own;
#pragma unroll
    for (int v = 0; v < kVec; ++v) own.v[v] = acc[v];
    store_fragment(slice + (lane * t.slots + slot) * kVec, own);
  }
  __syncthreads();
  if (!active) return;
  for (int e = thread; e < t.slots * kVec; e += t.slice_threads) {
    const int r = r0 + e / kVec / t.col_group;
    const int row_slot = col_slot0 + e / kVec % t.col_group;
    const int o = row_slot % (t.taps_padded / kVec) * kVec + e % kVec;
    const int s = tap_at(o * phases + row_slot / (t.taps_padded / kVec), dil_w, S);
    if (r >= R || row_slot >= t.row_slots || s < 0) continue;
    acc_t sum = 0;
    for (int l = 0; l < t.lanes; ++l) sum += simt::ld_shared(slice + l * t.slots * kVec + e);
    const int64_t at = (k * R + r) * S + s;
    if (partials != nullptr) {
      simt::st_global(partials + split * p.K * R * S + at, sum);
    } else {
      simt::st_global(dw + at, static_cast<T>(sum));
    }
  }
}

template <typename T>
void depthwise_wgrad(const ConvParams& p, const T* x, const T* dy, T* dw, const at::TensorOptions& options,
                     cudaStream_t stream) {
  if (depthwise_mma_wgrad(p, x, dy, dw, options, stream)) return;
  using namespace depthwise;
  using acc_t = at::opmath_type<T>;
  const WgradTiling t = wgrad_tiling(p, sizeof(T), sizeof(acc_t));
  const dim3 block(static_cast<unsigned>(t.slice_threads), static_cast<unsigned>(t.planes));
  if (t.splits == 1) {
    launch_grid(depthwise_wgrad_kernel<T>, Grid{t.blocks}, block, t.shared_bytes(sizeof(acc_t)), stream, p, t,
                x, dy, static_cast<acc_t*>(nullptr), dw);
    return;
  }
  const int64_t numel = p.K * p.R * p.S;
  const at::Tensor partials =
      at::empty({t.splits, numel}, options.dtype(c10::CppTypeToScalarType<acc_t>::value));
  launch_grid(depthwise_wgrad_kernel<T>, Grid{t.blocks}, block, t.shared_bytes(sizeof(acc_t)), stream, p, t, x,
              dy, partials.mutable_data_ptr<acc_t>(), dw);
  // The partials are in dw's order: to the reduce kernel, one tap of numel channels.
  depthwise_wgrad_reduce(t.splits, int64_t{1}, depthwise_nhwc::PartialRow::of<acc_t>(numel, 1), numel,
                         partials.const_data_ptr<acc_t>(), dw, stream);
}

}  // namespace convkernels::cuda
