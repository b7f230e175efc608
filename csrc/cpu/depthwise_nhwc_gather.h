// The gather behind the channels_last (NHWC) depthwise fprop and dgrad, vectorised over channels.
//
// Both compute every output pixel as a sum over the (input row, filter row) pairs that reach its
// row and the filter columns that reach its column, each term a vector of channels:
//   out[n, h, col(t), c] = bias[c] + sum over pairs i of row h, taps e of pixel t of
//                          w_row_i[e's column, c] * in_row_i[in_col(t, e), c + channel offset_i]
// In NHWC the channels of a pixel are contiguous, so each term is a vector FMA of a filter vector
// (the filters are restaged as taps x channels) and a unit-stride vector of input channels.
//
// A row splits into column phases (fprop: one; dgrad at stride_w s: s phases, pixels w = j + t*s)
// in which pixel t of tap e reads input column t * in_step + col0[e]. The pixels whose taps are all
// in range form one run; it is computed in register tiles of kTile pixels that share each filter
// vector load. The pixels at the borders go one at a time over their taps in range only, so an
// out-of-range (padding) position is never read, and an Inf or NaN reaches exactly the outputs that
// read it. A channel count that is not a multiple of the vector takes masked loads and stores in
// its last vector (zeros in the unused lanes, which are never stored).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <ATen/Parallel.h>

#include "depthwise_plane.h"
#include "index_math.h"
#include "simd_vec.h"

namespace convkernels::cpu::nhwc {

// One column phase of the output rows: pixel t < count sits at column first + t * out_step; its
// tap e reads input column t * in_step + col0[e] and filter column wcol[e]. Offsets are in
// elements: in_off[e] = col0[e] * in_pitch, w_off[e] = wcol[e] * w_pitch.
struct Phase {
  int64_t first, count, out_step, in_step;
  std::vector<int64_t> in_off, w_off;
  std::vector<int64_t> lo, hi;  // pixel t reads the taps [lo[t], hi[t]) (the others are outside)
  int64_t inner_begin, inner_end;  // the run of pixels that read every tap

  // col0 must be monotonic in e, so that the taps in range of a pixel are a contiguous run.
  Phase(int64_t first, int64_t count, int64_t out_step, int64_t in_step,
        const std::vector<int64_t>& col0, const std::vector<int64_t>& wcol, int64_t in_width,
        int64_t in_pitch, int64_t w_pitch)
      : first(first), count(count), out_step(out_step), in_step(in_step), lo(count), hi(count) {
    const int64_t taps = static_cast<int64_t>(col0.size());
    for (int64_t e = 0; e < taps; ++e) {
      in_off.push_back(col0[e] * in_pitch);
      w_off.push_back(wcol[e] * w_pitch);
    }
    inner_begin = count;
    inner_end = count;
    for (int64_t t = 0; t < count; ++t) {
      int64_t e = 0;
      const auto inside = [&](int64_t e) {
        const int64_t col = t * in_step + col0[e];
        return col >= 0 && col < in_width;
      };
      while (e < taps && !inside(e)) ++e;
      lo[t] = e;
      while (e < taps && inside(e)) ++e;
      hi[t] = e;
      const bool all = lo[t] == 0 && hi[t] == taps;
      if (all && inner_begin == count) inner_begin = t;
      if (all) inner_end = t + 1;
    }
  }
};

// The pairs of each output row: pair i of row h reads input row in_row[i] at channel offset
// in_channel[i] with the filter row that starts at element w_row[i] of the restaged filters.
struct RowPairs {
  std::vector<int64_t> begin;  // row h: pairs [begin[h], begin[h + 1])
  std::vector<int64_t> in_row, in_channel, w_row;

  void add(int64_t ih, int64_t channel, int64_t w) {
    in_row.push_back(ih);
    in_channel.push_back(channel);
    w_row.push_back(w);
  }
  void end_row() { begin.push_back(static_cast<int64_t>(in_row.size())); }
  int64_t max_pairs() const {
    int64_t most = 0;
    for (size_t h = 1; h < begin.size(); ++h) most = std::max(most, begin[h] - begin[h - 1]);
    return most;
  }
};

// A whole problem: input N x in_h x in_w pixels of in_pitch elements, output N x out_h x out_w
// pixels of `channels` channels, filters restaged with w_pitch elements per tap (a multiple of the
// vector, zero past `channels`), bias padded likewise.
template <typename T>
struct Gather {
  int64_t N, in_h, in_w, in_pitch, out_h, out_w, channels, w_pitch;
  const T* in;
  const T* w;
  const T* bias;
  T* out;
  const std::vector<Phase>* phases;
  const RowPairs* rows;
};

inline constexpr int64_t kTile = 8;  // output pixels per register tile

// One output row and one vector of channels from c0: `lanes` of them (masked when Tail).
template <typename T, int64_t Bytes, bool Tail>
struct RowKernel {
  using V = Vec<T, Bytes>;
  using vec = typename V::type;
  const T* in;           // the input image at channel c0
  const T* w;            // the filters at channel c0
  const T* bias;         // at c0
  T* out;                // the output row at channel c0
  const int64_t* in_rows;  // per pair: offset of its input row
  const int64_t* w_rows;   // per pair: offset of its filter row
  int64_t pairs, in_pitch, out_pitch, lanes;

  vec load(const T* p) const {
    if constexpr (Tail) return depthwise::load_head<T, Bytes>(p, lanes);
    return V::load(p);
  }
  void store(T* p, vec v) const {
    if constexpr (Tail) return depthwise::store_head<T, Bytes>(p, v, lanes);
    V::store(p, v);
  }

  // Pixels [t0, t0 + NT) of the phase over its taps [e_lo, e_hi).
  template <int64_t NT>
  void tile(const Phase& ph, int64_t t0, int64_t e_lo, int64_t e_hi) const {
    vec acc[NT];
    const vec b = V::load(bias);
    for (int64_t t = 0; t < NT; ++t) acc[t] = b;
    const int64_t step = ph.in_step * in_pitch;
    for (int64_t i = 0; i < pairs; ++i) {
      const T* src_row = in + in_rows[i] + t0 * step;
      const T* w_row = w + w_rows[i];
      for (int64_t e = e_lo; e < e_hi; ++e) {
        const vec wv = V::load(w_row + ph.w_off[e]);
        const T* src = src_row + ph.in_off[e];
#pragma GCC unroll 16
        for (int64_t t = 0; t < NT; ++t) acc[t] += wv * load(src + t * step);
      }
    }
    T* dst = out + (ph.first + t0 * ph.out_step) * out_pitch;
    for (int64_t t = 0; t < NT; ++t) store(dst + t * ph.out_step * out_pitch, acc[t]);
  }

  // The inner pixels from t up to `end`, in tiles of NT, then NT / 2, ...
  template <int64_t NT>
  void inner(const Phase& ph, int64_t t, int64_t end) const {
    const int64_t taps = static_cast<int64_t>(ph.in_off.size());
    for (; t + NT <= end; t += NT) tile<NT>(ph, t, 0, taps);
    if constexpr (NT > 1) inner<NT / 2>(ph, t, end);
  }

  void row(const Phase& ph) const {
    for (int64_t t = 0; t < ph.inner_begin; ++t) tile<1>(ph, t, ph.lo[t], ph.hi[t]);
    inner<kTile>(ph, ph.inner_begin, ph.inner_end);
    for (int64_t t = ph.inner_end; t < ph.count; ++t) tile<1>(ph, t, ph.lo[t], ph.hi[t]);
  }
};

// Runs the problem. Tasks are (image, group of channel vectors, output row), rows innermost so that
// a thread's consecutive rows reuse the input rows in cache; a group's input rows fill about
// 128 KiB (all channels for a 3x3 filter on small rows, one vector for RepLKNet's 31x31).
template <typename T, int64_t Bytes>
void run_gather(const Gather<T>& g) {
  constexpr int64_t L = Vec<T, Bytes>::lanes;
  const int64_t vecs = ceil_div(g.channels, L);
  const int64_t row_bytes = std::max<int64_t>(1, g.rows->max_pairs() * g.in_w * L * sizeof(T));
  const int64_t group = std::clamp<int64_t>((128 << 10) / row_bytes, 1, vecs);
  const int64_t groups = ceil_div(vecs, group);
  at::parallel_for(0, g.N * groups * g.out_h, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> in_rows;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t h = task % g.out_h;
      const int64_t v_begin = task / g.out_h % groups * group;
      const int64_t n = task / (g.out_h * groups);
      const RowPairs& rp = *g.rows;
      const int64_t p0 = rp.begin[h], pairs = rp.begin[h + 1] - p0;
      in_rows.resize(pairs);
      for (int64_t i = 0; i < pairs; ++i) {
        in_rows[i] = (n * g.in_h + rp.in_row[p0 + i]) * g.in_w * g.in_pitch + rp.in_channel[p0 + i];
      }
      T* const out_row = g.out + (n * g.out_h + h) * g.out_w * g.channels;
      for (int64_t v = v_begin; v < std::min(vecs, v_begin + group); ++v) {
        const int64_t c0 = v * L, lanes = std::min(L, g.channels - c0);
        const auto run = [&]<bool Tail>() {
          const RowKernel<T, Bytes, Tail> k{g.in + c0, g.w + c0, g.bias + c0, out_row + c0,
                                            in_rows.data(), rp.w_row.data() + p0, pairs,
                                            g.in_pitch, g.channels, lanes};
          for (const Phase& ph : *g.phases) k.row(ph);
        };
        if (lanes == L) {
          run.template operator()<false>();
        } else {
          run.template operator()<true>();
        }
      }
    }
  });
}

// run_gather in wide vectors once the channels fill most of one, else in 32-byte vectors.
template <typename T>
void gather(const Gather<T>& g) {
  if (4 * g.channels >= 3 * Vec<T, kWideVectorBytes>::lanes) return run_gather<T, kWideVectorBytes>(g);
  run_gather<T, 32>(g);
}

// The filter pitch for `channels`: a whole number of wide vectors.
template <typename T>
int64_t filter_pitch(int64_t channels) {
  return round_up(channels, Vec<T, kWideVectorBytes>::lanes);
}

}  // namespace convkernels::cpu::nhwc
