// Which 16-byte chunks of a stage's k a warp's n8 tile multiplies. Unpacked (EveryChunk), all of
// them. Where a GEMM group packs several convolution groups (NhwcConvProblem::packed), only the
// chunks of the tile's own group (OwnGroupChunks): the block-diagonal filters hold zeros across
// groups, and 0 x Inf would put NaN into another group's outputs where torch keeps them apart.
// The warp's math skips a k-step no chunk of which is the tile's and zeroes the fragment half of a
// k-step that straddles two groups; chunks past a group's channels hold zeros (the relayout's
// padding), so they are never Inf.
#pragma once

#include "problem.cuh"

namespace convkernels::cuda::nhwc_igemm {

struct EveryChunk {
  static constexpr bool kEvery = true;
  __device__ EveryChunk at_stage(int) const { return *this; }
  __device__ bool takes(int, int) const { return true; }
};

template <int kTilesN>
struct OwnGroupChunks {
  static constexpr bool kEvery = false;
  int first[kTilesN];  // the first channel (of the GEMM group's k) of n8 tile j's convolution group
  int channels;        // a convolution group's channels (packed_c)
  int stage = 0;       // the first channel of the stage being multiplied

  // `n0`: the warp's first column in the GEMM group. Packed columns come in whole n8 tiles.
  __device__ OwnGroupChunks(const NhwcConvProblem& p, int n0) : channels(p.packed_c) {
#pragma unroll
    for (int j = 0; j < kTilesN; ++j) first[j] = (n0 + 8 * j) / p.packed_k * p.packed_c;
  }

  __device__ OwnGroupChunks at_stage(int c) const {
    OwnGroupChunks at = *this;
    at.stage = c;
    return at;
  }
  // Whether n8 tile j multiplies the chunk that starts at `channel` of the stage.
  __device__ bool takes(int j, int channel) const {
    return static_cast<unsigned>(stage + channel - first[j]) < static_cast<unsigned>(channels);
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
