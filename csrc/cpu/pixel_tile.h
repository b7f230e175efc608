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
#include <type_traits>

#include <ATen/OpMathType.h>

#include "../conv_params.h"

#include "pointwise_tile.h"

namespace convkernels::cpu::pixel_tile {

using pointwise::Tile;

// Where a finished tile goes: rows i < n to rows[i] (NR contiguous channels of the accumulation
// type), or with rows null all MR rows to `tile` (MR x NR, row-major) for the caller to convert or
// scatter.
template <typename acc_t>
struct TileOut {
  acc_t* const* rows;
  int64_t n;
  acc_t* tile;
};

template <typename acc_t, typename Acc>
inline void store_tile(const Acc& acc, const TileOut<acc_t>& out) {
  using V = typename Tile<acc_t>::V;
  constexpr int64_t MR = Tile<acc_t>::rows, NV = Tile<acc_t>::vecs, NR = Tile<acc_t>::cols;
  if (out.rows != nullptr) {
    // Over all MR rows with a test, not up to out.n: a runtime bound would index the accumulators
    // with a runtime row, which puts them in memory.
    for (int64_t i = 0; i < MR; ++i) {
      if (i >= out.n) break;
      for (int64_t v = 0; v < NV; ++v) V::store(out.rows[i] + v * V::lanes, acc[i][v]);
    }
    return;
  }
  acc_t* __restrict c = out.tile;
  for (int64_t i = 0; i < MR; ++i) {
    for (int64_t v = 0; v < NV; ++v) V::store(c + i * NR + v * V::lanes, acc[i][v]);
  }
}

// For i < MR, j < NR: the sum of init[j] and, over u < taps and d < depth,
// rows[u * MR + i][d] * panels[u][d * pitch + j], stored to `out`.
template <typename acc_t, typename scalar_t>
inline void gathered_product(int64_t taps, int64_t depth, const scalar_t* const* rows,
                             const acc_t* const* panels, int64_t pitch, const acc_t* init,
                             const TileOut<acc_t>& out) {
  using V = typename Tile<acc_t>::V;
  constexpr int64_t MR = Tile<acc_t>::rows, NV = Tile<acc_t>::vecs;
  typename V::type acc[MR][NV];
  for (int64_t v = 0; v < NV; ++v) {
    const typename V::type start = V::load(init + v * V::lanes);
    for (int64_t i = 0; i < MR; ++i) acc[i][v] = start;
  }
  for (int64_t u = 0; u < taps; ++u) {
    const scalar_t* a[MR];
    for (int64_t i = 0; i < MR; ++i) a[i] = rows[u * MR + i];
    const acc_t* __restrict b = panels[u];
#pragma GCC unroll 2
    for (int64_t d = 0; d < depth; ++d) {
      typename V::type bd[NV];
      for (int64_t v = 0; v < NV; ++v) bd[v] = V::load(b + d * pitch + v * V::lanes);
      for (int64_t i = 0; i < MR; ++i) {
        const acc_t ai = static_cast<acc_t>(a[i][d]);
        for (int64_t v = 0; v < NV; ++v) acc[i][v] += ai * bd[v];
      }
    }
  }
  store_tile<acc_t>(acc, out);
}

// Packed groups: a vector of L channels that holds L / G whole groups of G channels. Lane j of
// spread_group_lane<G>(x, d) is lane (j / G) * G + d of x: channel d of lane j's group.
template <int64_t G, typename V>
inline typename V::type spread_group_lane(typename V::type x, int64_t d) {
  using lane_t = std::remove_cvref_t<decltype(x[0])>;
  using index_t = std::conditional_t<sizeof(lane_t) == 8, int64_t, int32_t>;
  typedef index_t Index __attribute__((vector_size(sizeof(typename V::type))));
  // Built in place, not loaded from a table: with d known at compile time (the callers unroll
  // over it) the index is a constant and the permute often a cheaper in-lane shuffle.
  Index lane;
  for (int64_t j = 0; j < V::lanes; ++j) lane[j] = static_cast<index_t>(j / G * G + d);
  return __builtin_shuffle(x, lane);
}

// The group width G where the packed-group kernels take a channels_last convolution, else 0:
// G = Cg = Kg of 2, 4, 8 or a vector's lanes (where a tile of whole groups' channels beats one
// group per strip), whole strips of NR channels, no shuffle, float or double.
template <typename scalar_t>
int64_t packed_group_width(const ConvParams& p) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t NR = Tile<acc_t>::cols, L = Tile<acc_t>::V::lanes;
  const int64_t G = p.k_per_group();
  const bool packs = std::is_same_v<scalar_t, acc_t> && !p.shuffle_output && p.groups > 1 &&
                     p.c_per_group() == G && (G == 2 || G == 4 || G == 8 || G == L) && L % G == 0 &&
                     p.K % NR == 0;
  return packs ? G : 0;
}

// Calls f(std::integral_constant<int64_t, G>) for G = packed_group_width(p) (0: not packed).
template <typename scalar_t, typename F>
void with_packed_groups(const ConvParams& p, F&& f) {
  if constexpr (std::is_same_v<scalar_t, at::opmath_type<scalar_t>>) {
    switch (packed_group_width<scalar_t>(p)) {
      case 2: return f(std::integral_constant<int64_t, 2>{});
      case 4: return f(std::integral_constant<int64_t, 4>{});
      case 8: return f(std::integral_constant<int64_t, 8>{});
      case 16: return f(std::integral_constant<int64_t, 16>{});
    }
  }
  f(std::integral_constant<int64_t, 0>{});
}

// The same tile where its NR output channels are NR / G whole packed groups: a strip of the usual
// tile would leave all but G of its NR columns idle. Here rows[u * MR + i] points at the strip's NR
// input channels of a pixel (the same groups' inputs), and panels[u][d * NR + j] holds output
// channel j's filter for input channel d of its group: one lane permute per vector and d instead
// of a broadcast.
template <int64_t G, typename acc_t>
inline void packed_groups_product(int64_t taps, const acc_t* const* rows,
                                  const acc_t* const* panels, const acc_t* init,
                                  const TileOut<acc_t>& out) {
  using V = typename Tile<acc_t>::V;
  constexpr int64_t MR = Tile<acc_t>::rows, NV = Tile<acc_t>::vecs, NR = Tile<acc_t>::cols;
  constexpr int64_t L = V::lanes;
  typename V::type acc[MR][NV];
  for (int64_t v = 0; v < NV; ++v) {
    const typename V::type start = V::load(init + v * L);
    for (int64_t i = 0; i < MR; ++i) acc[i][v] = start;
  }
  for (int64_t u = 0; u < taps; ++u) {
    const acc_t* __restrict b = panels[u];
    if constexpr (G == L) {
      // A group per vector: its input channel d is one broadcast per vector, from memory.
      for (int64_t d = 0; d < G; ++d) {
        typename V::type bd[NV];
        for (int64_t v = 0; v < NV; ++v) bd[v] = V::load(b + d * NR + v * L);
        for (int64_t i = 0; i < MR; ++i) {
          for (int64_t v = 0; v < NV; ++v) acc[i][v] += rows[u * MR + i][v * L + d] * bd[v];
        }
      }
      continue;
    }
    for (int64_t i = 0; i < MR; ++i) {
      typename V::type x[NV];
      for (int64_t v = 0; v < NV; ++v) x[v] = V::load(rows[u * MR + i] + v * L);
#pragma GCC unroll 8
      for (int64_t d = 0; d < G; ++d) {
        for (int64_t v = 0; v < NV; ++v) {
          acc[i][v] += spread_group_lane<G, V>(x[v], d) * V::load(b + d * NR + v * L);
        }
      }
    }
  }
  store_tile<acc_t>(acc, out);
}

}  // namespace convkernels::cpu::pixel_tile
