// WgradTiling: how the channels_last depthwise weight gradient covers its work with blocks. A block
// takes `group` channel vectors, `items` (filter row, run of kTapCols taps) items and a split of
// the reduction over the (n, position tile) pairs; per pair it stages the dy tile and the x patch
// its taps read in shared memory, once for all of them. Each split's partial sums go to a slot of
// their own; a second kernel adds the splits in split order. The result is the same bits on every
// run (no atomics), and depends on the shape only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../../conv_params.h"
#include "../depthwise_tile.cuh"

namespace convkernels::cuda::depthwise_nhwc {

constexpr int kTapCols = 4;                   // taps of a filter row per thread
constexpr int kWgradThreads = 256;            // threads per block, at most
constexpr int64_t kTargetBlocks = 1024;       // a few waves of a large GPU
constexpr int64_t kMinPairsPerSplit = 2;      // a split's partial sums stay a small part of its reads

// One dimension of the x patch, its indices grouped by stride phase where `phased`: index i at
// slot(i). Then the indices that consecutive positions read for one tap, `stride` apart in x, are
// consecutive slots, so a group of less than a wavefront (several positions a quarter-warp) reads
// whole wavefronts at any stride. In general slot(o * stride + i) = o * step + slot(i).
struct PhaseOrder {
  int per_phase;  // slots of one phase
  int phases;     // the stride where phased, else 1
  int step;       // slots between consecutive positions: 1 where phased, else the stride

  static PhaseOrder of(int64_t length, int64_t stride, bool phased) {
    const int64_t phases = phased ? stride : 1;
    return {static_cast<int>(depthwise::ceil_div(length, phases)), static_cast<int>(phases),
            static_cast<int>(stride / phases)};
  }
  C10_HOST_DEVICE int extent() const { return per_phase * phases; }
  C10_HOST_DEVICE int slot(int64_t i) const { return static_cast<int>(i % phases * per_phase + i / phases); }
  C10_HOST_DEVICE int index(int at) const { return at % per_phase * phases + at / per_phase; }
};

struct WgradTiling {
  int group;                    // channel vectors per block, adjacent lanes on adjacent vectors
  int row_chunks;               // items per filter row: ceil(S / kTapCols)
  int items;                    // items per block
  int lanes;                    // threads per (vector, item); lane l sums positions l, l + lanes, ...
  int sums_pitch;               // chunks (16 bytes, or a channel's sum) of the lanes' sums per (tap, item)
  int tile_h, tile_w;           // position tile
  PhaseOrder patch_rows, patch_cols;  // the x patch it reads
  int row_pitch;                // slots of a patch row, patch_cols' extent or more: = tile_w modulo the
                                // positions a wavefront reads, which keeps them on separate banks
                                // where they wrap to the next row
  int64_t channel_groups, item_groups;
  int64_t tiles_h, tiles_w, pairs, pairs_per_split, splits;
  int64_t blocks;               // one per (split, item group, channel group)
  std::size_t shared_bytes;     // the staged tiles, then the lanes' sums

  C10_HOST_DEVICE int threads() const { return group * lanes * items; }
  C10_HOST_DEVICE int patch_len() const { return patch_rows.extent() * row_pitch * group; }  // vectors

  // kWidth channels a vector, of value_size-byte values summed in acc_size-byte ones.
  static WgradTiling of(const ConvParams& p, int width, std::size_t value_size, std::size_t acc_size) {
    using depthwise::ceil_div;
    WgradTiling t{};
    t.row_chunks = static_cast<int>(ceil_div(p.S, kTapCols));
    const int64_t vectors = p.K / width, all_items = p.R * t.row_chunks;
    // The threads of a shared-memory wavefront (a quarter-warp of 16-byte vectors) read 128
    // contiguous bytes: adjacent vectors of a pixel, then the same vectors of the next positions
    // (lanes), whose pixels the patch's phase order (PhaseOrder, row_pitch) keeps in the next
    // slots at any stride. No bank conflicts.
    const int64_t wavefront = std::min<int64_t>(128 / (width * value_size), 32);
    t.group = static_cast<int>(std::min(vectors, wavefront));
    const int64_t min_lanes = ceil_div(wavefront, t.group);
    t.items = static_cast<int>(std::min<int64_t>(all_items, kWgradThreads / (t.group * min_lanes)));
    // Whole wavefronts of lanes of one item.
    t.lanes = static_cast<int>(kWgradThreads / (t.group * t.items) / min_lanes * min_lanes);
    // Where a group is less than a wavefront, the reduction's threads (adjacent on vectors, then
    // items) read several items' sums at once: a pitch that puts the next item's right after.
    const int64_t per_chunk = std::min<int64_t>(width, 16 / acc_size), chunk_bytes = per_chunk * acc_size;
    const int64_t chunk_wavefront = std::min<int64_t>(128 / chunk_bytes, 32);
    t.sums_pitch = static_cast<int>(depthwise::round_up(width / per_chunk * t.lanes * t.group, chunk_wavefront) +
                                    t.group % chunk_wavefront);
    t.channel_groups = ceil_div(vectors, t.group);
    t.item_groups = ceil_div(all_items, t.items);

    t.tile_h = static_cast<int>(std::min<int64_t>(p.P, 32));
    t.tile_w = static_cast<int>(std::min<int64_t>(p.Q, 32));
    const auto fit = [&] {
      // A group of a whole wavefront reads one position a wavefront: no phases, no padding.
      const bool phased = min_lanes > 1;
      t.patch_rows = PhaseOrder::of((t.tile_h - 1) * p.stride_h + (p.R - 1) * p.dil_h + 1, p.stride_h, phased);
      t.patch_cols = PhaseOrder::of((t.tile_w - 1) * p.stride_w + (p.S - 1) * p.dil_w + 1, p.stride_w, phased);
      const int cols = t.patch_cols.extent();
      t.row_pitch = static_cast<int>(cols + ((t.tile_w - cols) % min_lanes + min_lanes) % min_lanes);
      const std::size_t staged = static_cast<std::size_t>(t.patch_len() + t.tile_h * t.tile_w * t.group) *
                                 width * value_size;
      const std::size_t sums = static_cast<std::size_t>(kTapCols * t.items * t.sums_pitch * chunk_bytes);
      t.shared_bytes = std::max(staged, sums);
      return t.shared_bytes <= depthwise::kSharedBudget;
    };
    // Large planes, strides or dilations: shorter tiles, then narrower ones.
    while (!fit() && (t.tile_h > 1 || t.tile_w > 1)) {
      if (t.tile_h > 1) {
        t.tile_h = (t.tile_h + 1) / 2;
      } else {
        t.tile_w = (t.tile_w + 1) / 2;
      }
    }
    depthwise::check_shared_fits(t.shared_bytes, "depthwise_nhwc_wgrad");
    t.tiles_h = ceil_div(p.P, t.tile_h);
    t.tiles_w = ceil_div(p.Q, t.tile_w);
    t.pairs = p.N * t.tiles_h * t.tiles_w;
    const int64_t per_split = t.channel_groups * t.item_groups;
    const int64_t wanted = ceil_div(kTargetBlocks, per_split);
    const int64_t splits = std::clamp<int64_t>(wanted, 1, std::max<int64_t>(1, t.pairs / kMinPairsPerSplit));
    t.pairs_per_split = ceil_div(t.pairs, splits);
    t.splits = ceil_div(t.pairs, t.pairs_per_split);
    t.blocks = per_split * t.splits;
    return t;
  }
};

// Where a (split, tap) row of K partial sums (acc_t) keeps its channels. A thread stores the sums
// of its `width` channels in 16-byte chunks of per_chunk channels, chunk h of every thread in
// segment h of the row (K / chunks long): the lanes of a warp, which hold adjacent channel vectors,
// write adjacent chunks, 16 whole sectors a request, even where a thread's sums are 32 bytes (8 half
// channels in float). One chunk a vector keeps the row in channel order.
template <typename acc_t>
constexpr int sums_per_chunk(int width) {
  return std::min(width, static_cast<int>(16 / sizeof(acc_t)));
}

struct PartialRow {
  int64_t segment;
  int width, per_chunk;

  template <typename acc_t>
  C10_HOST_DEVICE static PartialRow of(int64_t K, int width) {
    return {K / (width / sums_per_chunk<acc_t>(width)), width, sums_per_chunk<acc_t>(width)};
  }
  // Which chunk of the row (counted in chunks) holds chunk h of the sums of channels k .. k + width - 1.
  C10_HOST_DEVICE int64_t chunk_at(int64_t k, int h) const { return h * (segment / per_chunk) + k / width; }
  // The channel whose sum is at position e.
  C10_HOST_DEVICE int64_t channel_at(int64_t e) const {
    return e % segment / per_chunk * width + e / segment * per_chunk + e % per_chunk;
  }
};

// How the reduce kernel (wgrad_kernel.cuh) tiles the [taps][K] sums: `taps` taps (up to
// kReduceTaps) of `positions` positions a block, at least a warp's worth of positions, more where
// the filter has few taps (one tap of kThreads positions for the NCHW kernel's flat partials).
struct ReduceTile {
  static constexpr int kThreads = 256;
  static constexpr int kReduceTaps = 32;
  static constexpr int kSums = 32 * (kReduceTaps + 1);  // the largest tile, at an odd pitch
  int positions, taps;

  C10_HOST_DEVICE int64_t tap_tiles(int64_t all_taps) const { return (all_taps + taps - 1) / taps; }
  int64_t blocks(int64_t K, int64_t all_taps) const {
    return depthwise::ceil_div(K, positions) * tap_tiles(all_taps);
  }
  static ReduceTile of(int64_t all_taps) {
    const int taps = static_cast<int>(std::min<int64_t>(all_taps, kReduceTaps));
    const int positions = std::max(32, kThreads / taps / 32 * 32);
    return {positions, taps};
  }
};

}  // namespace convkernels::cuda::depthwise_nhwc
