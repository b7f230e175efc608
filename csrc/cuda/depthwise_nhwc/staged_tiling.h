// StagedTiling: how the staged channels_last depthwise kernel (staged_kernel.cuh) covers a
// StagedProblem (staged_problem.h) at the full channel vector width with blocks.
//
// A block stages the source patch of its output tiles and the filter taps of its channel vectors
// in shared memory once, then its threads compute OutputTiles (kRows x kRun outputs, one vector
// each) from there: every source and filter value is read from global memory once per block, where
// the register-run kernels read a source pixel once per thread tile that reaches it (R + kRows - 1
// rows of kRun + S - 1 pixels for kRows x kRun outputs; 28x for a 13x13 filter) and a filter tap
// once per thread. A strided input gradient's block takes the same tile of every stride phase,
// which read one patch of dy: dy is read once, not once per phase.
//
// A staged pixel is one 128-byte line, a shared-memory wavefront: kSlots 16-byte slots, `group`
// channel vectors of each of kSlots / group sub-tiles (adjacent output tiles of the plane, or of the
// next image). The eight lanes of a quarter-warp hold the eight slots of one thread tile position,
// so whatever the stride and dilation they read one whole line: no bank conflicts, including
// channel groups of fewer than 8 vectors (32 bfloat16 channels, 8 float32 ones).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../depthwise_tile.cuh"
#include "output_tile.cuh"
#include "staged_problem.h"

namespace convkernels::cuda::depthwise_nhwc {

constexpr int kSlots = 8;           // 16-byte slots of a staged pixel: 128 bytes
constexpr int kStagedTileSide = 16; // outputs per side of a sub-tile, at most
// Shared memory a block may take before its sub-tiles shrink: up to 128 KB (one block an SM) a
// large filter keeps 16x16 sub-tiles, whose patches read each x pixel 3x (13x13) rather than the
// 6x of the 8x8 sub-tiles 64 KB would leave it.
constexpr std::size_t kStagedSharedBudget = 128 * 1024;
// Threads a block may take before its sub-tiles shrink: 16x16 outputs of one phase, 8x8 of each of
// a stride-2 input gradient's four.
constexpr int kStagedThreadBudget = 256;

struct StagedTiling {
  int group;                   // channel vectors per sub-tile: the largest power of two <= min(vectors, 8)
  int tile_h, tile_w;          // outputs of a sub-tile in each phase (multiples of kRows, kRun)
  int phases;                  // stride phases of a sub-tile
  int patch_h, patch_w;        // the source pixels a sub-tile reads
  int64_t tiles_h, tiles_w, tiles;  // sub-tiles per plane along each side, and over the batch
  int64_t channel_groups, blocks;
  std::size_t shared_bytes;    // patch, then the filter's taps of the group's vectors

  C10_HOST_DEVICE int sub_tiles() const { return kSlots / group; }
  C10_HOST_DEVICE int runs() const { return tile_w / kRun; }
  C10_HOST_DEVICE int thread_tiles() const { return (tile_h / kRows) * runs(); }  // of a phase
  C10_HOST_DEVICE int threads() const { return kSlots * phases * thread_tiles(); }
  C10_HOST_DEVICE int patch_len() const { return patch_h * patch_w * kSlots; }

  // For `vectors` channel vectors of vector_bytes (16) each; fits() says whether the sub-tiles
  // could be brought under the budgets (not for huge dilations, 31x31 filters of 8 vectors, or
  // input gradients of more than 32 stride phases).
  static StagedTiling of(const StagedProblem& q, int64_t vectors, std::size_t vector_bytes) {
    using depthwise::ceil_div;
    using depthwise::round_up;
    StagedTiling t{};
    t.group = 1;
    while (t.group * 2 <= std::min<int64_t>(vectors, kSlots)) t.group *= 2;
    t.phases = static_cast<int>(q.phases());
    t.tile_h = static_cast<int>(std::min<int64_t>(round_up(q.rows.max_outputs, kRows), kStagedTileSide));
    t.tile_w = static_cast<int>(std::min<int64_t>(round_up(q.cols.max_outputs, kRun), kStagedTileSide));
    const auto size = [&] {
      t.patch_h = static_cast<int>((t.tile_h - 1) * q.rows.stride + q.rows.span);
      t.patch_w = static_cast<int>((t.tile_w - 1) * q.cols.stride + q.cols.span);
      t.shared_bytes = (static_cast<std::size_t>(t.patch_len()) + q.rows.filter * q.cols.filter * t.group) *
                       vector_bytes;
    };
    // Large filters, strides, dilations or phase counts: the longer side of the sub-tiles halves
    // (the height first), which keeps the patch's halo small.
    for (size(); !t.fits() && (t.tile_h > kRows || t.tile_w > kRun); size()) {
      if (t.tile_w == kRun || (t.tile_h > kRows && t.tile_h >= t.tile_w)) {
        t.tile_h = static_cast<int>(round_up(t.tile_h / 2, kRows));
      } else {
        t.tile_w = static_cast<int>(round_up(t.tile_w / 2, kRun));
      }
    }
    t.tiles_h = ceil_div(q.rows.max_outputs, t.tile_h);
    t.tiles_w = ceil_div(q.cols.max_outputs, t.tile_w);
    t.tiles = q.images * t.tiles_h * t.tiles_w;
    t.channel_groups = ceil_div(vectors, t.group);
    t.blocks = ceil_div(t.tiles, t.sub_tiles()) * t.channel_groups;
    return t;
  }

  bool fits() const { return shared_bytes <= kStagedSharedBudget && threads() <= kStagedThreadBudget; }
};

}  // namespace convkernels::cuda::depthwise_nhwc
