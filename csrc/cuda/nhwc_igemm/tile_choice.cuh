// How the channels_last implicit GEMMs choose their block tile: the tile table's entry for the
// problem where a tuner wrote one (../../tile_table.h), else a heuristic of the launch site's.
// The table names a tile by its block's rows and columns ("128x64") and a problem by a key of the
// GEMM (conv or weight gradient), the operands' type, the math, and the convolution's geometry.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

#include <c10/core/ScalarType.h>

#include "../../tile_table.h"
#include "problem.cuh"
#include "wgrad_problem.cuh"

namespace convkernels::cuda::nhwc_igemm {

template <class Tile>
std::string_view tile_name() {
  static const std::string name = std::to_string(Tile::kBlockM) + "x" + std::to_string(Tile::kBlockN);
  return name;
}

// The key of a problem of T multiplied on `math` ("mma.sync", "wgmma", ...) by `gemm` ("conv" or
// "wgrad"): the fields the two problems share, which determine the GEMM and how its operands load.
template <typename T, class Problem>
std::string tile_key(const char* gemm, const char* math, const Problem& p) {
  std::ostringstream key;
  key << gemm << " GEMM, " << c10::toString(c10::CppTypeToScalarType<T>::value) << " on " << math << ": N=" << p.N
      << " in=" << p.H << 'x' << p.W << 'x' << p.C << " out=" << p.P << 'x' << p.Q << 'x' << p.K
      << " filter=" << p.R << 'x' << p.S << " stride=" << p.stride_h << 'x' << p.stride_w << " pad=" << p.pad_h
      << 'x' << p.pad_w << " dilation=" << p.dil_h << 'x' << p.dil_w << " groups=" << p.groups
      << " packed=" << p.packed;
  if constexpr (std::is_same_v<Problem, NhwcConvProblem>) {
    // A strided dgrad's phases: one problem each, told apart by where they write.
    key << " out_step=" << p.out_stride_h << 'x' << p.out_stride_w << '+' << p.out_h0 << '+' << p.out_w0;
  }
  return key.str();
}

// The GEMM a problem's launch multiplies with Tile: M and N rounded up to whole tiles.
template <class Tile>
int64_t padded_gemm(const NhwcConvProblem& p) {
  const auto whole = [](int64_t n, int64_t tile) { return (n + tile - 1) / tile * tile; };
  return whole(p.M(), Tile::kBlockM) * whole(p.k_per_group, Tile::kBlockN);
}

// Calls launch(Tile{}) with the tile of Tiles that the tile table names for key(), or else with the
// first of Tiles (largest first) whose padded GEMM is within 1.25x of the smallest one any of them
// gives: large tiles for large GEMMs, where they reuse each staged byte most, smaller ones where a
// large tile would mostly multiply padding.
template <class... Tiles, class Key, class Launch>
void launch_with_tile_of(const NhwcConvProblem& p, Key&& key, Launch&& launch) {
  const int64_t padded[] = {padded_gemm<Tiles>(p)...};
  const int64_t least = *std::min_element(std::begin(padded), std::end(padded));
  const int heuristic = static_cast<int>(
      std::find_if(std::begin(padded), std::end(padded), [&](int64_t gemm) { return 4 * gemm <= 5 * least; }) -
      std::begin(padded));
  const int chosen = tile_table().choose(key, {tile_name<Tiles>()...}, heuristic);
  int i = 0;
  ((i++ == chosen ? launch(Tiles{}) : void()), ...);
}

}  // namespace convkernels::cuda::nhwc_igemm
