// The register tile of the channels_last (NHWC) convolutions: MR output pixels x NR output
// channels, reduced over the taps of a filter and the channels each tap reads.
//
// In NHWC the channels of a pixel are contiguous, so every (output pixel, tap) pair reads one
// contiguous row of `depth` input channels, and the filter of a tap, packed as a depth x NR panel,
// is shared by all the pixels. The tile therefore needs no staging of its input: it takes, per
// tap, a pointer to the row each of its MR pixels reads (a row of zeros where the tap falls in the
// padding, or where the tile has fewer than MR pixels) and the tap's panel. Per step of depth it
// loads NV vectors of the panel and broadcasts one element of each row: MR x NV FMAs on
// accumulators that stay in registers across all taps (the tile shape of pointwise_tile.h).
#pragma once

#include <cstdint>

#include "pointwise_tile.h"

namespace convkernels::cpu::pixel_tile {

using pointwise::Tile;

// For i < MR, j < NR: the sum of init[j] and, over u < taps and d < depth,
// rows[u * MR + i][d] * panels[u][d * NR + j]. Where `out` is given (the output rows of a tile of
// NR contiguous channels of the accumulation type), rows i < n_out are stored there; else all MR
// rows go to c (MR x NR, row-major) for the caller to convert or scatter.
template <typename acc_t, typename scalar_t>
inline void gathered_product(int64_t taps, int64_t depth, const scalar_t* const* rows,
                             const acc_t* const* panels, const acc_t* init, acc_t* const* out,
                             int64_t n_out, acc_t* __restrict c) {
  using V = typename Tile<acc_t>::V;
  constexpr int64_t MR = Tile<acc_t>::rows, NV = Tile<acc_t>::vecs, NR = Tile<acc_t>::cols;
  typename V::type acc[MR][NV];
  for (int64_t v = 0; v < NV; ++v) {
    const typename V::type start = V::load(init + v * V::lanes);
    for (int64_t i = 0; i < MR; ++i) acc[i][v] = start;
  }
  for (int64_t u = 0; u < taps; ++u) {
    const scalar_t* a[MR];
    for (int64_t i = 0; i < MR; ++i) a[i] = rows[u * MR + i];
    const acc_t* __restrict b = panels[u];
    for (int64_t d = 0; d < depth; ++d) {
      typename V::type bd[NV];
      for (int64_t v = 0; v < NV; ++v) bd[v] = V::load(b + d * NR + v * V::lanes);
      for (int64_t i = 0; i < MR; ++i) {
        const acc_t ai = static_cast<acc_t>(a[i][d]);
        for (int64_t v = 0; v < NV; ++v) acc[i][v] += ai * bd[v];
      }
    }
  }
  if (out != nullptr) {
    for (int64_t i = 0; i < n_out; ++i) {
      for (int64_t v = 0; v < NV; ++v) V::store(out[i] + v * V::lanes, acc[i][v]);
    }
    return;
  }
  for (int64_t i = 0; i < MR; ++i) {
    for (int64_t v = 0; v < NV; ++v) V::store(c + i * NR + v * V::lanes, acc[i][v]);
  }
}

}  // namespace convkernels::cpu::pixel_tile
