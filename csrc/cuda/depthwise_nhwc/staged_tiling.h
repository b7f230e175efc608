// StagedTiling: how the staged channels_last depthwise kernel (staged_kernel.cuh) covers a
// correlation at the full channel vector width with blocks.
//
// A block stages the x patch of its output tiles and the filter taps of its channel vectors in
// shared memory once, then its threads compute OutputTiles (kRows x kRun outputs, one vector each)
// from there: every x and filter value is read from global memory once per block, where the
// register-run kernels read a source pixel once per thread tile that reaches it (R + kRows - 1 rows
// of kRun + S - 1 pixels for kRows x kRun outputs; 28x for a 13x13 filter) and a filter tap once
// per thread.
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

#include "../../conv_params.h"
#include "../depthwise_tile.cuh"
#include "output_tile.cuh"

namespace convkernels::cuda::depthwise_nhwc {

constexpr int kSlots = 8;           // 16-byte slots of a staged pixel: 128 bytes
constexpr int kStagedTileSide = 16; // outputs per side of a sub-tile, at most
// Shared memory a block may take before its sub-tiles shrink: up to 128 KB (one block an SM) a
// large filter keeps 16x16 sub-tiles, whose patches read each x pixel 3x (13x13) rather than the
// 17x of the 2x8 sub-tiles 64 KB would leave it.
constexpr std::size_t kStagedSharedBudget = 128 * 1024;

struct StagedTiling {
  int group;                   // channel vectors per sub-tile: the largest power of two <= min(vectors, 8)
  int tile_h, tile_w;          // outputs of a sub-tile (multiples of kRows, kRun)
  int patch_h, patch_w;        // the x pixels a sub-tile reads
  int64_t tiles_h, tiles_w, tiles;  // sub-tiles per plane along each side, and over the batch
  int64_t channel_groups, blocks;
  std::size_t shared_bytes;    // patch, then the filter's taps of the group's vectors

  C10_HOST_DEVICE int sub_tiles() const { return kSlots / group; }
  C10_HOST_DEVICE int runs() const { return tile_w / kRun; }
  C10_HOST_DEVICE int threads() const { return kSlots * (tile_h / kRows) * runs(); }
  C10_HOST_DEVICE int patch_len() const { return patch_h * patch_w * kSlots; }

  // For `vectors` channel vectors of vector_bytes (16) each; fits() says whether the sub-tiles
  // could be brought under the budget (not for huge dilations, or 31x31 filters of 8 vectors).
  static StagedTiling of(const ConvParams& p, int64_t vectors, std::size_t vector_bytes) {
    using depthwise::ceil_div;
    using depthwise::round_up;
    StagedTiling t{};
    t.group = 1;
    while (t.group * 2 <= std::min<int64_t>(vectors, kSlots)) t.group *= 2;
    t.tile_h = static_cast<int>(std::min<int64_t>(round_up(p.P, kRows), kStagedTileSide));
    t.tile_w = static_cast<int>(std::min<int64_t>(round_up(p.Q, kRun), kStagedTileSide));
    const auto size = [&] {
      t.patch_h = static_cast<int>((t.tile_h - 1) * p.stride_h + (p.R - 1) * p.dil_h + 1);
      t.patch_w = static_cast<int>((t.tile_w - 1) * p.stride_w + (p.S - 1) * p.dil_w + 1);
      t.shared_bytes = (static_cast<std::size_t>(t.patch_len()) + p.R * p.S * t.group) * vector_bytes;
    };
    // Large filters, strides or dilations: shorter sub-tiles, then narrower ones.
    for (size(); t.shared_bytes > kStagedSharedBudget && (t.tile_h > kRows || t.tile_w > kRun); size()) {
      if (t.tile_h > kRows) {
        t.tile_h = static_cast<int>(round_up(t.tile_h / 2, kRows));
      } else {
        t.tile_w = static_cast<int>(round_up(t.tile_w / 2, kRun));
      }
    }
    t.tiles_h = ceil_div(p.P, t.tile_h);
    t.tiles_w = ceil_div(p.Q, t.tile_w);
    t.tiles = p.N * t.tiles_h * t.tiles_w;
    t.channel_groups = ceil_div(vectors, t.group);
    t.blocks = ceil_div(t.tiles, t.sub_tiles()) * t.channel_groups;
    return t;
  }

  bool fits() const { return shared_bytes <= kStagedSharedBudget; }
};

}  // namespace convkernels::cuda::depthwise_nhwc
