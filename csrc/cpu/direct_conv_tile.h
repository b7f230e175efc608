// Building blocks of the general (grouped, any stride / padding / dilation) CPU kernels, after
// Zhang, Franchetti and Low, "High Performance Zero-Memory Overhead Direct Convolutions" (2018).
//
// A task stages the few rows a band of output rows reads in a small per-task buffer of acc_t,
// zero-padded in width and split into stride phases (padded column i lives at phase i % stride,
// position i / stride), so that every filter tap reads a unit-stride run with no bounds checks at
// any stride (and half types are converted once). A reduction is then a list of taps, each a run
// in that buffer and a weight index; the register-tiled micro-kernel reduces it into kBlock output
// channels x kRowVecs vector registers of an output row. Weights are packed once per call so that
// the kBlock weights a tap broadcasts are contiguous. No buffer grows with the image beyond a band.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../conv_params.h"
#include "index_math.h"

namespace convkernels::cpu::direct {

// The vector register the tiles are made of: 256-bit AVX2 (the build's baseline), or AVX-512.
#ifdef __AVX512F__
constexpr int64_t kVectorBytes = 64;
#else
constexpr int64_t kVectorBytes = 32;
#endif

// Elements of acc_t in one vector register: the unit of the register tiles.
template <typename acc_t>
constexpr int64_t kLanes = kVectorBytes / sizeof(acc_t);

// Output channels of a register tile; the count % kBlock channels left over run in blocks of
// halving widths (for kBlock = 8: 4, 2, 1), so that a group of 4 channels still fills a tile.
constexpr int kBlock = kVectorBytes == 64 ? 8 : 4;
// Width of a register tile in registers: kBlock x kRowVecs accumulators, 12 of AVX2's 16 or 24 of
// AVX-512's 32.
constexpr int kRowVecs = 3;

// The block of output channels [begin, begin + width) that holds channel o of `out`.
struct Block {
  int64_t begin, width;
};
inline Block block_of(int64_t o, int64_t out) {
  int64_t begin = o / kBlock * kBlock;
  for (int64_t width = kBlock;; width /= 2) {
    if (out - begin >= width) {
      if (o < begin + width) return {begin, width};
      begin += width;
    }
  }
}

// Stages phase j of src[0, n) split into `stride` phases of `len` elements: position i holds
// src[i * stride + j - pad], and zero where that index falls outside [0, n).
template <typename scalar_t, typename acc_t>
void stage_phase(const scalar_t* src, int64_t n, int64_t pad, int64_t stride, int64_t len,
                 int64_t j, acc_t* dst) {
  const int64_t first = j - pad;  // source index of position 0
  const int64_t begin = std::min(len, first >= 0 ? 0 : ceil_div(-first, stride));
  const int64_t end = std::max(begin, std::min(len, n > first ? ceil_div(n - first, stride) : 0));
  std::fill(dst, dst + begin, acc_t(0));
  if (stride == 1) {  // the common case, in a loop that vectorizes
    for (int64_t i = begin; i < end; ++i) dst[i] = static_cast<acc_t>(src[first + i]);
  } else {
    for (int64_t i = begin; i < end; ++i) dst[i] = static_cast<acc_t>(src[first + i * stride]);
  }
  std::fill(dst + end, dst + len, acc_t(0));
}

// Stages src[0, n) zero-padded by pad at the left, in one phase of len elements.
template <typename scalar_t, typename acc_t>
void stage_row(const scalar_t* src, int64_t n, int64_t pad, int64_t len, acc_t* dst) {
  stage_phase(src, n, pad, 1, len, 0, dst);
}

// Packs the weights of every group into the order the micro-kernel reads. A group is
// out x red x taps_per_channel elements of scalar_t, at w + g * out * red * taps with the given
// strides (the spatial taps contiguous), and at the same offset in the packed copy: there, the
// block of output channels starting at o0 (block_of) begins at o0 * red * taps, and holds for each
// tap (reduction channel, then spatial tap) the block's weights side by side.
template <typename acc_t, typename scalar_t>
std::vector<acc_t> pack_weights(const scalar_t* w, int64_t groups, int64_t out, int64_t out_stride,
                                int64_t red, int64_t red_stride, int64_t taps) {
  const int64_t group_size = out * red * taps;
  std::vector<acc_t> packed(groups * group_size);
  for (int64_t g = 0; g < groups; ++g) {
    const scalar_t* wg = w + g * group_size;
    acc_t* dst = packed.data() + g * group_size;
    // Written in order, read as `width` sequential streams.
    for (int64_t o = 0; o < out;) {
      const Block b = block_of(o, out);
      acc_t* block = dst + b.begin * red * taps;
      for (int64_t i = 0; i < red; ++i) {
        for (int64_t t = 0; t < taps; ++t, block += b.width) {
          const scalar_t* src = wg + o * out_stride + i * red_stride + t;
          for (int64_t kk = 0; kk < b.width; ++kk) {
            block[kk] = static_cast<acc_t>(src[kk * out_stride]);
          }
        }
      }
      o += b.width;
    }
  }
  return packed;
}

// One term of a reduction: the run of the staging buffer at offset x, times the packed weights of
// tap w (index into a channel's taps_per_channel).
struct Tap {
  int64_t x, w;
};

// The staged input of a band of consecutive output rows [p0, p0 + rows) and a range of up to
// `channels` input channels, shared by fprop and wgrad: for every staged channel c, the input rows
// p0 * stride_h - pad_h + i that the band reads (i < span), each as stride_w phases of len. Rows
// outside the image are staged as zeros: the callers skip the taps that read only them where they
// can.
class InputBand {
 public:
  // For bands of up to rows() output rows: max_rows, or 1 when the stride skips more input rows
  // than a filter window covers (the band would stage mostly rows nobody reads: with a stride of
  // thousands, gigabytes). The staged rows are long enough for output columns
  // [0, round_up(Q, lanes)), as register tiles read whole registers.
  InputBand(const ConvParams& p, int64_t lanes, int64_t max_rows, int64_t channels)
      : p_(p),
        channels_(channels),
        rows_((p.stride_h - 1) / 2 < (p.R - 1) * p.dil_h + 1 ? max_rows : 1),  // stride <= 2 spans
        len_(round_up(p.Q, lanes) + (p.S - 1) * p.dil_w / p.stride_w),
        pitch_(p.stride_w * len_),
        span_((rows_ - 1) * p.stride_h + (p.R - 1) * p.dil_h + 1),
        s_offset_(p.S),
        row_read_(span_),
        phase_read_(p.stride_w) {
    // Output column q of tap s reads padded column q * stride_w + s * dil_w.
    for (int64_t s = 0; s < p.S; ++s) {
      s_offset_[s] = (s * p.dil_w) % p.stride_w * len_ + s * p.dil_w / p.stride_w;
      phase_read_[s * p.dil_w % p.stride_w] = true;
    }
    // A stride larger than the filter window skips rows and phases: they are not staged.
    for (int64_t i = 0; i < rows_; ++i) {
      for (int64_t r = 0; r < p.R; ++r) row_read_[i * p.stride_h + r * p.dil_h] = true;
    }
  }

  int64_t rows() const { return rows_; }
  int64_t buffer_size() const { return channels_ * span_ * pitch_; }
  // Buffer distance between the runs a tap reads for consecutive output rows, and channels.
  int64_t row_step() const { return p_.stride_h * pitch_; }
  int64_t channel_step() const { return span_ * pitch_; }
  // Where the run that tap (r, s) of staged channel c reads for output row i of the band starts.
  int64_t offset(int64_t c, int64_t i, int64_t r, int64_t s) const {
    return (c * span_ + i * p_.stride_h + r * p_.dil_h) * pitch_ + s_offset_[s];
  }

  // Stages input channels [c0, c0 + channels) of image n (at most the constructor's count) for
  // the band of `rows` output rows from p0 into buf.
  template <typename scalar_t, typename acc_t>
  void stage(const scalar_t* x, int64_t n, int64_t c0, int64_t channels, int64_t p0, int64_t rows,
             acc_t* buf) const {
    const int64_t origin = p0 * p_.stride_h - p_.pad_h;
    const int64_t span = (rows - 1) * p_.stride_h + (p_.R - 1) * p_.dil_h + 1;
    for (int64_t c = 0; c < channels; ++c) {
      const scalar_t* plane = x + (n * p_.C + c0 + c) * p_.H * p_.W;
      for (int64_t i = 0; i < span; ++i) {
        const int64_t h = origin + i;
        acc_t* row = buf + (c * span_ + i) * pitch_;
        for (int64_t j = 0; j < p_.stride_w && row_read_[i]; ++j) {
          if (!phase_read_[j]) continue;
          if (h >= 0 && h < p_.H) {
            stage_phase(plane + h * p_.W, p_.W, p_.pad_w, p_.stride_w, len_, j, row + j * len_);
          } else {  // read by the tiles that span several output rows (Segments)
            std::fill(row + j * len_, row + (j + 1) * len_, acc_t(0));
          }
        }
      }
    }
  }

  // Lists the taps (c, r, s) of all staged channels with r in `filter_rows` of output row p0 + i,
  // with w = (c*R + r)*S + s; returns their number.
  int64_t list_taps(int64_t i, Range filter_rows, Tap* taps) const {
    int64_t n_taps = 0;
    for (int64_t c = 0; c < channels_; ++c) {
      for (int64_t r = filter_rows.begin; r < filter_rows.end; ++r) {
        for (int64_t s = 0; s < p_.S; ++s) {
          taps[n_taps++] = {offset(c, i, r, s), (c * p_.R + r) * p_.S + s};
        }
      }
    }
    return n_taps;
  }

 private:
  const ConvParams& p_;
  int64_t channels_, rows_, len_, pitch_, span_;
  std::vector<int64_t> s_offset_;
  std::vector<bool> row_read_, phase_read_;  // by some tap
};

// Where a kernel writes a row: channel o, element t is data[o * channel_stride + t * step].
// A row may be several segments of count elements that share one tap list (output rows too short
// to fill a register tile on their own): element t of segment i reads the staging buffer at
// tap.x + i * segments.x + t and is stored at data[o * channel_stride + i * segments.y + t * step].
struct Segments {
  int64_t count, x, y;
};
template <typename scalar_t>
struct OutputRow {
  scalar_t* data;
  int64_t channel_stride;
  int64_t step;
  int64_t count;
  const scalar_t* bias;  // per output channel, or nullptr
  Segments segments = {1, 0, 0};
};

// Output channels [o0, o0 + KB) x registers [t0 / lanes, t0 / lanes + QV) of a row. With M = 1 a
// segment takes whole registers (the elements past its end are computed from the staging buffer's
// padding and not stored); with M = 2 a register holds two segments of up to lanes / 2 elements,
// one from lane 0 and one from lane count, blended from two loads.
template <int KB, int QV, int M, typename scalar_t, typename acc_t>
void reduce_tile(const acc_t* buf, const acc_t* w, const Tap* taps, int64_t n_taps,
                 const OutputRow<scalar_t>& out, int64_t o0, int64_t t0) {
  constexpr int64_t L = kLanes<acc_t>;
  const Segments& seg = out.segments;
  const int64_t run = M == 1 ? round_up(out.count, L) : L;  // elements of a register's segments
  const int64_t split = M == 1 ? L : out.count;              // the lane the second one starts at
  // Register v: lanes [0, n_lo) from buffer offset x_lo, lanes [split, n_hi) from x_hi (an offset
  // by split, so that lane j always reads x + j); output offsets y_lo and y_hi likewise.
  int64_t x_lo[QV], x_hi[QV], y_lo[QV], y_hi[QV], n_lo[QV], n_hi[QV];
  for (int v = 0; v < QV; ++v) {
    const int64_t i = (t0 + v * L) / run * M, t = (t0 + v * L) % run;
    const bool hi = M == 2 && i + 1 < seg.count;
    x_lo[v] = i * seg.x + t;
    y_lo[v] = i * seg.y + t * out.step;
    n_lo[v] = std::min(L, out.count - t);
    x_hi[v] = hi ? (i + 1) * seg.x - split : x_lo[v];
    y_hi[v] = (i + 1) * seg.y - split * out.step;
    n_hi[v] = hi ? 2 * split : split;
  }
  acc_t acc[KB][QV][L] = {};
  for (int64_t i = 0; i < n_taps; ++i) {
    const acc_t* x = buf + taps[i].x;
    const acc_t* wt = w + taps[i].w * KB;
    acc_t xv[QV][L];  // with M = 2, the blended registers, once per tap rather than per channel
    if constexpr (M == 2) {
#pragma GCC unroll 4
      for (int v = 0; v < QV; ++v) {
#pragma omp simd
        for (int64_t j = 0; j < L; ++j) {
          const acc_t lo = x[x_lo[v] + j], hi = x[x_hi[v] + j];  // both in bounds
          xv[v][j] = j < split ? lo : hi;
        }
      }
    }
    // Unrolled in full, so that the accumulators live in registers.
#pragma GCC unroll 16
    for (int kk = 0; kk < KB; ++kk) {
      const acc_t wv = wt[kk];
#pragma GCC unroll 4
      for (int v = 0; v < QV; ++v) {
#pragma omp simd
        for (int64_t j = 0; j < L; ++j) acc[kk][v][j] += wv * (M == 1 ? x[x_lo[v] + j] : xv[v][j]);
      }
    }
  }
  for (int kk = 0; kk < KB; ++kk) {
    const acc_t b = out.bias ? static_cast<acc_t>(out.bias[o0 + kk]) : acc_t(0);
    scalar_t* y = out.data + (o0 + kk) * out.channel_stride;
    for (int v = 0; v < QV; ++v) {
      for (int64_t j = 0; j < n_lo[v]; ++j) {
        y[y_lo[v] + j * out.step] = static_cast<scalar_t>(acc[kk][v][j] + b);
      }
      for (int64_t j = split; j < n_hi[v]; ++j) {
        y[y_hi[v] + j * out.step] = static_cast<scalar_t>(acc[kk][v][j] + b);
      }
    }
  }
}

template <int KB, int M, typename scalar_t, typename acc_t>
void reduce_block(const acc_t* buf, const acc_t* w, const Tap* taps, int64_t n_taps,
                  const OutputRow<scalar_t>& out, int64_t o0) {
  constexpr int64_t L = kLanes<acc_t>;
  static_assert(kRowVecs == 3, "the dispatch below covers 1 to kRowVecs registers");
  const int64_t count = M == 1 ? out.segments.count * round_up(out.count, L)
                               : ceil_div(out.segments.count, 2) * L;
  for (int64_t t0 = 0; t0 < count; t0 += kRowVecs * L) {
    // The row's tail takes the fewest registers that cover it.
    switch (std::min<int64_t>(kRowVecs, ceil_div(count - t0, L))) {
      case 3: reduce_tile<KB, 3, M>(buf, w, taps, n_taps, out, o0, t0); break;
      case 2: reduce_tile<KB, 2, M>(buf, w, taps, n_taps, out, o0, t0); break;
      default: reduce_tile<KB, 1, M>(buf, w, taps, n_taps, out, o0, t0); break;
    }
  }
}

// reduce_block for a block of `width` (a power of two up to KB) output channels.
template <int KB = kBlock, typename scalar_t, typename acc_t>
void reduce_block_of_width(int64_t width, const acc_t* buf, const acc_t* w, const Tap* taps,
                           int64_t n_taps, const OutputRow<scalar_t>& out, int64_t o0) {
  if constexpr (KB > 1) {
    if (width < KB) return reduce_block_of_width<KB / 2>(width, buf, w, taps, n_taps, out, o0);
  }
  if (out.segments.count > 1 && 2 * out.count <= kLanes<acc_t>) {
    reduce_block<KB, 2>(buf, w, taps, n_taps, out, o0);
  } else {
    reduce_block<KB, 1>(buf, w, taps, n_taps, out, o0);
  }
}

// out[o, t] = bias[o] + sum over taps of w[o, tap] * buf[tap.x + t], for every output channel
// o < n_out and t < out.count. The staging buffer must hold round_up(out.count, lanes) elements
// past every tap's x; w is packed by pack_weights with taps_per_channel taps per channel.
template <typename scalar_t, typename acc_t>
void reduce_row(const acc_t* buf, const acc_t* w, int64_t taps_per_channel, const Tap* taps,
                int64_t n_taps, int64_t n_out, const OutputRow<scalar_t>& out) {
  for (int64_t o = 0; o < n_out;) {
    const Block b = block_of(o, n_out);
    reduce_block_of_width(b.width, buf, w + o * taps_per_channel, taps, n_taps, out, o);
    o += b.width;
  }
}

}  // namespace convkernels::cpu::direct
