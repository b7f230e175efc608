// WgradSplit: how the channels_last depthwise weight gradient divides its reduction over the
// N*P*Q output positions. Each split is a contiguous range of positions, reduced by one thread per
// (channel vector, chunk of up to kTapCols taps of a filter row) into its own slot of a float
// partial sum; a second kernel adds the splits in split order. The result is the same bits on
// every run (no atomics), and depends on the shape only.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../../conv_params.h"

namespace convkernels::cuda::depthwise_nhwc {

constexpr int kTapCols = 4;                  // taps of a filter row per thread
constexpr int64_t kTargetThreads = 1 << 16;  // a few waves of a large GPU

struct WgradSplit {
  int64_t row_chunks;  // chunks of a filter row: ceil(S / kTapCols)
  int64_t positions;   // per split (the last may have fewer)
  int64_t splits;

  // At least enough threads for the GPU where the positions allow, with each split long enough
  // (8 positions per tap, 64 at least) that its partial sums move a small fraction of the bytes
  // the split reads.
  static WgradSplit of(const ConvParams& p, int64_t channel_vectors) {
    const int64_t taps = p.R * p.S, total = p.N * p.P * p.Q;
    WgradSplit s{(p.S + kTapCols - 1) / kTapCols, 0, 0};
    const int64_t per_split = channel_vectors * p.R * s.row_chunks;  // threads
    const int64_t wanted = (kTargetThreads + per_split - 1) / per_split;
    const int64_t shortest = std::max<int64_t>(64, 8 * taps);
    const int64_t most = std::max<int64_t>(1, total / shortest);
    const int64_t splits = std::clamp<int64_t>(wanted, 1, most);
    s.positions = (total + splits - 1) / splits;
    s.splits = (total + s.positions - 1) / s.positions;
    return s;
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

}  // namespace convkernels::cuda::depthwise_nhwc
