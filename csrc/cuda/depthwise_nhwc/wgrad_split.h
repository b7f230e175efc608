// WgradSplit: how the channels_last depthwise weight gradient divides its reduction over the
// N*P*Q output positions. Each split is a contiguous range of positions, reduced by one thread per
// (channel vector, chunk of filter taps) into its own slot of a float partial sum; a second kernel
// adds the splits in split order. The result is the same bits on every run (no atomics), and
// depends on the shape only.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../../conv_params.h"

namespace convkernels::cuda::depthwise_nhwc {

constexpr int kTapChunk = 9;               // filter taps per thread: a 3x3 filter in one chunk
constexpr int64_t kTargetThreads = 1 << 16;  // a few waves of a large GPU

struct WgradSplit {
  int64_t tap_chunks;  // ceil(R*S / kTapChunk)
  int64_t positions;   // per split (the last may have fewer)
  int64_t splits;

  // At least enough threads for the GPU where the positions allow, with each split long enough
  // (8 positions per tap, 64 at least) that its partial sums move a small fraction of the bytes
  // the split reads.
  static WgradSplit of(const ConvParams& p, int64_t channel_vectors) {
    const int64_t taps = p.R * p.S, total = p.N * p.P * p.Q;
    WgradSplit s{(taps + kTapChunk - 1) / kTapChunk, 0, 0};
    const int64_t wanted = (kTargetThreads + channel_vectors * s.tap_chunks - 1) / (channel_vectors * s.tap_chunks);
    const int64_t shortest = std::max<int64_t>(64, 8 * taps);
    const int64_t most = std::max<int64_t>(1, total / shortest);
    const int64_t splits = std::clamp<int64_t>(wanted, 1, most);
    s.positions = (total + splits - 1) / splits;
    s.splits = (total + s.positions - 1) / s.positions;
    return s;
  }
};

}  // namespace convkernels::cuda::depthwise_nhwc
