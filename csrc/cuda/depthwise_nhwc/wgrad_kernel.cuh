// depthwise_nhwc_wgrad_kernel: the channels_last depthwise weight gradient, first pass,
//   partial[split, r*S + s, k] = sum over the split's positions (n, p, q) of
//                                dy[n, p, q, k] * x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, k / M],
// in acc_t, its channels placed as PartialRow says. A thread reduces one split (WgradSplit) for
// kWidth channels and kTapChunk taps: per position one 16-byte load of dy and one of x per tap that
// reads inside the input, the tap offsets precomputed, the position advanced by adds.
// depthwise_nhwc_wgrad_reduce_kernel then sums the splits in order. kWidth > 1 only at
// multiplier 1.
#pragma once

#include "../../conv_params.h"
#include "../launch.cuh"
#include "channel_vector.cuh"
#include "wgrad_split.h"

namespace convkernels::cuda {

template <typename T, int kWidth>
__global__ void depthwise_nhwc_wgrad_kernel(Grid first, ConvParams p, depthwise_nhwc::WgradSplit split,
                                            const T* __restrict__ x, const T* __restrict__ dy,
                                            at::opmath_type<T>* __restrict__ partial) {
  using namespace depthwise_nhwc;
  using acc_t = at::opmath_type<T>;
  const int64_t vectors = p.K / kWidth, taps = p.R * p.S;
  int64_t item = block_index(first).x * blockDim.x + threadIdx.x;
  if (item >= split.splits * split.tap_chunks * vectors) return;
  const int64_t k = item % vectors * kWidth;
  item /= vectors;
  const int64_t tap0 = item % split.tap_chunks * kTapChunk, sp = item / split.tap_chunks;
  const int64_t c = k / (p.K / p.C);

  // The chunk's taps as offsets from an output position's top-left input pixel.
  int64_t tap_rows[kTapChunk], tap_cols[kTapChunk];
#pragma unroll
  for (int t = 0; t < kTapChunk; ++t) {
    const int64_t tap = min(tap0 + t, taps - 1);
    tap_rows[t] = tap / p.S * p.dil_h - p.pad_h;
    tap_cols[t] = tap % p.S * p.dil_w - p.pad_w;
  }
  const int chunk_taps = static_cast<int>(min(taps - tap0, int64_t{kTapChunk}));

  Lanes<acc_t, kWidth> acc[kTapChunk] = {};
  const int64_t begin = sp * split.positions, end = min(begin + split.positions, p.N * p.P * p.Q);
  int64_t q = begin % p.Q, oh = begin / p.Q % p.P, n = begin / (p.P * p.Q);
  for (int64_t position = begin; position < end; ++position) {
    const Lanes<acc_t, kWidth> g = load_channels<T, kWidth>(dy + position * p.K + k);
    const int64_t top = oh * p.stride_h, left = q * p.stride_w;
#pragma unroll
    for (int t = 0; t < kTapChunk; ++t) {
      const int64_t ih = top + tap_rows[t], iw = left + tap_cols[t];
      if (t >= chunk_taps || ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) continue;
      const Lanes<acc_t, kWidth> v = load_channels<T, kWidth>(x + ((n * p.H + ih) * p.W + iw) * p.C + c);
      simt::note_fma<acc_t>(kWidth);
#pragma unroll
      for (int i = 0; i < kWidth; ++i) acc[t].v[i] += g.v[i] * v.v[i];
    }
    if (++q == p.Q) {
      q = 0;
      if (++oh == p.P) {
        oh = 0;
        ++n;
      }
    }
  }
  constexpr int kPerChunk = sums_per_chunk<acc_t>(kWidth);
  const PartialRow layout = PartialRow::of<acc_t>(p.K, kWidth);
#pragma unroll
  for (int t = 0; t < kTapChunk; ++t) {
    if (t >= chunk_taps) continue;
    // Indexed as chunks, which keeps nvcc's 16-byte stores (as OutputTile::store).
    auto* const row = reinterpret_cast<ChannelVector<acc_t, kPerChunk>*>(partial + (sp * taps + tap0 + t) * p.K);
#pragma unroll
    for (int h = 0; h < kWidth / kPerChunk; ++h) {
      Lanes<acc_t, kPerChunk> chunk;
#pragma unroll
      for (int i = 0; i < kPerChunk; ++i) chunk.v[i] = acc[t].v[h * kPerChunk + i];
      store_channels<acc_t, kPerChunk>(row[layout.chunk_at(k, h)].v, chunk);
    }
  }
}

// dw[k, 0, r, s] = sum over splits, in split order, of the partial sums of (r*S + s, k); a thread
// per position of a (split, tap) row, so each split's partials are read along whole rows.
template <typename T>
__global__ void depthwise_nhwc_wgrad_reduce_kernel(Grid first, int64_t splits, int64_t taps,
                                                   depthwise_nhwc::PartialRow layout, int64_t K,
                                                   const at::opmath_type<T>* __restrict__ partial,
                                                   T* __restrict__ dw) {
  const int64_t e = block_index(first).x * blockDim.x + threadIdx.x;
  if (e >= taps * K) return;
  at::opmath_type<T> sum = 0;
  for (int64_t sp = 0; sp < splits; ++sp) sum += simt::ld_global(partial + sp * taps * K + e);
  simt::st_global(dw + layout.channel_at(e % K) * taps + e / K, static_cast<T>(sum));
}

}  // namespace convkernels::cuda
