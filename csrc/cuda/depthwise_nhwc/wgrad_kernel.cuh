// depthwise_nhwc_wgrad_kernel: the channels_last depthwise weight gradient, first pass,
//   partial[split, r*S + s, k] = sum over the split's positions (n, p, q) of
//                                dy[n, p, q, k] * x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, k / M],
// in acc_t, its channels placed as PartialRow says. A thread reduces one split (WgradSplit) for
// kWidth channels and the taps s0 .. s0 + kTapCols - 1 of filter row r: per position one 16-byte
// load of dy and the x pixels of its taps, held in a window that slides with q where the stride
// equals the dilation (every 3x3 at stride 1): then one new x load per position, whatever kTapCols.
// The position advances by adds. depthwise_nhwc_wgrad_reduce_kernel then sums the splits in order.
// kWidth > 1 only at multiplier 1.
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
  const int64_t vectors = p.K / kWidth, chunks = p.R * split.row_chunks;
  int64_t item = block_index(first).x * blockDim.x + threadIdx.x;
  if (item >= split.splits * chunks * vectors) return;
  const int64_t k = item % vectors * kWidth;
  item /= vectors;
  const int64_t r = item % chunks / split.row_chunks, s0 = item % split.row_chunks * kTapCols;
  const int64_t sp = item / chunks;
  const int64_t c = k / (p.K / p.C);
  const int cols = static_cast<int>(min(p.S - s0, int64_t{kTapCols}));
  const bool slides = p.stride_w == p.dil_w;

  Lanes<acc_t, kWidth> acc[kTapCols] = {}, window[kTapCols] = {};  // window[t]: x through tap s0 + t
  bool loaded = false;  // the window holds the previous position's pixels, on this row
  const int64_t begin = sp * split.positions, end = min(begin + split.positions, p.N * p.P * p.Q);
  int64_t q = begin % p.Q, oh = begin / p.Q % p.P, n = begin / (p.P * p.Q);
  for (int64_t position = begin; position < end; ++position) {
    const int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
    if (ih >= 0 && ih < p.H) {
      const T* const row = x + (n * p.H + ih) * p.W * p.C + c;
      const int64_t left = q * p.stride_w - p.pad_w + s0 * p.dil_w;
#pragma unroll
      for (int t = 0; t < kTapCols; ++t) {
        if (t + 1 < kTapCols && t + 1 < cols && loaded && slides) {
          window[t] = window[t + 1];
        } else if (t < cols) {
          window[t] = load_pixel<T, kWidth>(row, p.W, p.C, left + t * p.dil_w);
        }
      }
      loaded = true;
      const Lanes<acc_t, kWidth> g = load_channels<T, kWidth>(dy + position * p.K + k);
      simt::note_fma<acc_t>(int64_t{kWidth} * cols);
#pragma unroll
      for (int t = 0; t < kTapCols; ++t) {
        if (t >= cols) continue;
#pragma unroll
        for (int i = 0; i < kWidth; ++i) acc[t].v[i] += g.v[i] * window[t].v[i];
      }
    }
    if (++q == p.Q) {
      q = 0;
      loaded = false;
      if (++oh == p.P) {
        oh = 0;
        ++n;
      }
    }
  }

  constexpr int kPerChunk = sums_per_chunk<acc_t>(kWidth);
  const PartialRow layout = PartialRow::of<acc_t>(p.K, kWidth);
#pragma unroll
  for (int t = 0; t < kTapCols; ++t) {
    if (t >= cols) continue;
    // Indexed as chunks, which keeps nvcc's 16-byte stores (as OutputTile::store).
    auto* const row = reinterpret_cast<ChannelVector<acc_t, kPerChunk>*>(
        partial + (sp * p.R * p.S + r * p.S + s0 + t) * p.K);
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
