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
// in range form one run, computed in register tiles of 16, 8 or 4 pixels; where a phase has at
// most 7 neighbouring taps (3x3 to 7x7 filters) the taps are compile-time and each input pixel is
// loaded once per tile row. The border pixels go over their taps in range only (in tiles of 8 where
// a large filter leaves many, else one by one), so an out-of-range (padding) position is never
// read, and an Inf or NaN reaches exactly the outputs that read it. Each tile runs over all the
// channel vectors of its task's group in turn, so it reads and writes whole runs of pixels. A channel count that is not a multiple of the vector takes masked loads and stores in
// its last vector (zeros in the unused lanes, which are never stored).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>

#include "depthwise_plane.h"
#include "index_math.h"
#include "simd_vec.h"

namespace convkernels::cpu::nhwc {

// One column phase of the output rows: pixel t < count sits at column first + t * out_step; its
// tap e reads input column t * in_step + col0[e] and filter column wcol[e]. The taps are kept in
// increasing col0 (the taps in range of a pixel are then a contiguous run). Offsets are in
// elements: in_off[e] = col0[e] * in_pitch, w_off[e] = wcol[e] * w_pitch.
struct Phase {
  int64_t first, count, out_step, in_step;
  int64_t col_first = 0;        // col0[0]
  bool unit_taps = true;        // col0[e] = col0[0] + e: neighbouring taps read neighbouring pixels
  std::vector<int64_t> in_off, w_off;
  std::vector<int64_t> lo, hi;  // pixel t reads the taps [lo[t], hi[t]) (the others are outside)
  int64_t inner_begin, inner_end;  // the run of pixels that read every tap

  Phase(int64_t first, int64_t count, int64_t out_step, int64_t in_step,
        std::vector<std::pair<int64_t, int64_t>> taps,  // (col0, wcol)
        int64_t in_width, int64_t in_pitch, int64_t w_pitch)
      : first(first), count(count), out_step(out_step), in_step(in_step), lo(count), hi(count) {
    std::sort(taps.begin(), taps.end());
    const int64_t n = static_cast<int64_t>(taps.size());
    if (n > 0) col_first = taps[0].first;
    for (int64_t e = 0; e < n; ++e) {
      in_off.push_back(taps[e].first * in_pitch);
      w_off.push_back(taps[e].second * w_pitch);
      unit_taps = unit_taps && taps[e].first == col_first + e;
    }
    inner_begin = count;
    inner_end = count;
    for (int64_t t = 0; t < count; ++t) {
      const auto inside = [&](int64_t e) {
        const int64_t col = t * in_step + taps[e].first;
        return col >= 0 && col < in_width;
      };
      int64_t e = 0;
      while (e < n && !inside(e)) ++e;
      lo[t] = e;
      while (e < n && inside(e)) ++e;
      hi[t] = e;
      const bool all = lo[t] == 0 && hi[t] == n;
      if (all && inner_begin == count) inner_begin = t;
      if (all) inner_end = t + 1;
    }
  }
  int64_t taps() const { return static_cast<int64_t>(in_off.size()); }
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

// Pixels per register tile: in the inner run (16, 8 or 4), and at the borders (where large filters
// leave many pixels with some taps out of range).
inline constexpr int64_t kTile = 16;
inline constexpr int64_t kBorderTile = 8;
// Pixels per two-row tile (2 x 8 sums, 2 x 3 filters for a 3x3 filter).
inline constexpr int64_t kTile2 = 8;
// Phases with at most this many unit taps (a 7x7 filter's row) and an input step of 1 or 2 take
// tiles with compile-time taps.
inline constexpr int64_t kMaxFixedTaps = 7;

// One output row over a group of channels [c_begin, c_end): each tile of pixels is computed for
// every vector of the group in turn (the last one masked where the channels end inside it), so
// that a tile reads and writes whole runs of neighbouring pixels.
template <typename T, int64_t Bytes>
struct RowKernel {
  using V = Vec<T, Bytes>;
  using vec = typename V::type;
  static constexpr int64_t L = V::lanes;
  const T* in;             // the input image
  const T* w;              // the restaged filters
  const T* bias;
  T* out;                  // the output row
  const int64_t* in_rows;  // per pair: offset of its input row
  const int64_t* w_rows;   // per pair: offset of its filter row
  int64_t pairs, in_pitch, out_pitch, c_begin, c_end;
  // Two-row mode (row2): the next output row, whose pair i reads input row in_rows[i] + next_in
  // with filter row w_rows[i] (so it shares input rows 1 .. pairs - 1 of this row).
  T* out_next = nullptr;
  int64_t next_in = 0;
  bool stream = false;  // streaming (non-temporal) stores: an output much larger than L2

  template <bool Tail>
  static vec load(const T* p, int64_t lanes) {
    if constexpr (Tail) return depthwise::load_head<T, Bytes>(p, lanes);
    return V::load(p);
  }
  // Stores v at d: streaming past the caches (stream: large outputs) where d is aligned.
  template <bool Tail>
  void put(T* d, vec v, int64_t lanes) const {
    if constexpr (Tail) {
      depthwise::store_head<T, Bytes>(d, v, lanes);
    } else {
      if (stream) return stream_store<T, Bytes>(d, v);
      V::store(d, v);
    }
  }
  // Stores acc[t] for the NT pixels from t0 (a compile-time NT: a runtime count would make the
  // compiler keep acc in memory).
  template <bool Tail, int64_t NT>
  void store_tile(const Phase& ph, int64_t t0, int64_t c0, int64_t lanes,
                  const vec (&acc)[NT]) const {
    T* dst = out + (ph.first + t0 * ph.out_step) * out_pitch + c0;
    for (int64_t t = 0; t < NT; ++t) put<Tail>(dst + t * ph.out_step * out_pitch, acc[t], lanes);
  }
  // f.template operator()<Tail>(c0, lanes) for each vector of the group.
  template <typename F>
  void for_each_vector(F&& f) const {
    int64_t c0 = c_begin;
    for (; c0 + L <= c_end; c0 += L) f.template operator()<false>(c0, L);
    if (c0 < c_end) f.template operator()<true>(c0, c_end - c0);
  }

  // Pixels [t0, t0 + NT) over every tap, or (Border) each over its taps in range only.
  template <int64_t NT, bool Border>
  void tile(const Phase& ph, int64_t t0) const {
    int64_t e_lo = 0, e_hi = ph.taps();
    int64_t lo[NT], hi[NT];
    if constexpr (Border) {
      e_lo = e_hi;
      e_hi = 0;
      for (int64_t t = 0; t < NT; ++t) {
        lo[t] = ph.lo[t0 + t];
        hi[t] = ph.hi[t0 + t];
        e_lo = std::min(e_lo, lo[t]);
        e_hi = std::max(e_hi, hi[t]);
      }
    }
    const int64_t step = ph.in_step * in_pitch;
    for_each_vector([&]<bool Tail>(int64_t c0, int64_t lanes) {
      vec acc[NT];
      const vec b = V::load(bias + c0);
      for (int64_t t = 0; t < NT; ++t) acc[t] = b;
      for (int64_t i = 0; i < pairs; ++i) {
        const T* src_row = in + in_rows[i] + t0 * step + c0;
        const T* w_row = w + w_rows[i] + c0;
        for (int64_t e = e_lo; e < e_hi; ++e) {
          const vec wv = V::load(w_row + ph.w_off[e]);
          const T* src = src_row + ph.in_off[e];
#pragma GCC unroll 16
          for (int64_t t = 0; t < NT; ++t) {
            if (Border && (e < lo[t] || e >= hi[t])) continue;
            acc[t] += wv * load<Tail>(src + t * step, lanes);
          }
        }
      }
      store_tile<Tail>(ph, t0, c0, lanes, acc);
    });
  }

  // Pixel t over its taps in range, in four interleaved sums: one alone would be a chain of
  // dependent FMAs as long as the filter (every pixel of a 7x7 filter on a 7x7 image).
  void pixel(const Phase& ph, int64_t t) const {
    const int64_t e_lo = ph.lo[t], e_hi = ph.hi[t], col = t * ph.in_step * in_pitch;
    for_each_vector([&]<bool Tail>(int64_t c0, int64_t lanes) {
      vec acc[4] = {V::load(bias + c0), V::splat(T(0)), V::splat(T(0)), V::splat(T(0))};
      for (int64_t i = 0; i < pairs; ++i) {
        const T* src = in + in_rows[i] + col + c0;
        const T* w_row = w + w_rows[i] + c0;
        int64_t e = e_lo;
        for (; e + 4 <= e_hi; e += 4) {
          for (int64_t j = 0; j < 4; ++j) {
            acc[j] += V::load(w_row + ph.w_off[e + j]) * load<Tail>(src + ph.in_off[e + j], lanes);
          }
        }
        for (; e < e_hi; ++e) {
          acc[0] += V::load(w_row + ph.w_off[e]) * load<Tail>(src + ph.in_off[e], lanes);
        }
      }
      const vec sum[1] = {(acc[0] + acc[1]) + (acc[2] + acc[3])};
      store_tile<Tail>(ph, t, c0, lanes, sum);
    });
  }

  // Pixels [t0, t0 + NT) of a phase of E unit taps and input step Step, all in range: each input
  // pixel is loaded once per pair and feeds every output pixel of the tile that reads it, with the
  // pair's E filter vectors in registers.
  template <int64_t NT, int64_t E, int64_t Step>
  void fixed_tile(const Phase& ph, int64_t t0) const {
    for_each_vector([&]<bool Tail>(int64_t c0, int64_t lanes) {
      vec acc[NT];
      const vec b = V::load(bias + c0);
      for (int64_t t = 0; t < NT; ++t) acc[t] = b;
      for (int64_t i = 0; i < pairs; ++i) {
        const T* src = in + in_rows[i] + (t0 * Step + ph.col_first) * in_pitch + c0;
        vec wv[E];
        for (int64_t e = 0; e < E; ++e) wv[e] = V::load(w + w_rows[i] + ph.w_off[e] + c0);
#pragma GCC unroll 64  // fully: constant e keeps acc and wv in registers
        for (int64_t c = 0; c < (NT - 1) * Step + E; ++c) {
          const vec x = load<Tail>(src + c * in_pitch, lanes);
#pragma GCC unroll 16
          for (int64_t t = 0; t < NT; ++t) {
            const int64_t e = c - t * Step;
            if (e >= 0 && e < E) acc[t] += wv[e] * x;
          }
        }
      }
      store_tile<Tail>(ph, t0, c0, lanes, acc);
    });
  }

  // Pixels [t0, t0 + NT) of this row and the next one, as fixed_tile: input row j (j <= pairs)
  // feeds this row's pair j and the next row's pair j - 1, so each input pixel is loaded once for
  // both rows (pairs + 1 input rows for 2 * pairs row passes).
  template <int64_t NT, int64_t E, int64_t Step, bool Tail>
  void fixed_tile2(const Phase& ph, int64_t t0, int64_t c0, int64_t lanes) const {
    vec a0[NT], a1[NT];
    const vec b = V::load(bias + c0);
    for (int64_t t = 0; t < NT; ++t) a0[t] = a1[t] = b;
    const int64_t col = (t0 * Step + ph.col_first) * in_pitch + c0;
    // Input row at `src`: with filter row w0 into a0 (Top), with filter row w1 into a1 (Bottom).
    const auto pass = [&]<bool Top, bool Bottom>(const T* src, const T* w0, const T* w1) {
      vec wv0[E], wv1[E];
      for (int64_t e = 0; e < E; ++e) {
        if constexpr (Top) wv0[e] = V::load(w0 + ph.w_off[e] + c0);
        if constexpr (Bottom) wv1[e] = V::load(w1 + ph.w_off[e] + c0);
      }
#pragma GCC unroll 64
      for (int64_t c = 0; c < (NT - 1) * Step + E; ++c) {
        const vec x = load<Tail>(src + c * in_pitch, lanes);
#pragma GCC unroll 16
        for (int64_t t = 0; t < NT; ++t) {
          const int64_t e = c - t * Step;
          if (e >= 0 && e < E) {
            if constexpr (Top) a0[t] += wv0[e] * x;
            if constexpr (Bottom) a1[t] += wv1[e] * x;
          }
        }
      }
    };
    pass.template operator()<true, false>(in + in_rows[0] + col, w + w_rows[0], nullptr);
    for (int64_t j = 1; j < pairs; ++j) {
      pass.template operator()<true, true>(in + in_rows[j] + col, w + w_rows[j],
                                           w + w_rows[j - 1]);
    }
    pass.template operator()<false, true>(in + in_rows[pairs - 1] + next_in + col, nullptr,
                                          w + w_rows[pairs - 1]);
    for (int64_t r = 0; r < 2; ++r) {
      T* dst = (r ? out_next : out) + (ph.first + t0 * ph.out_step) * out_pitch + c0;
      for (int64_t t = 0; t < NT; ++t) {
        put<Tail>(dst + t * ph.out_step * out_pitch, r ? a1[t] : a0[t], lanes);
      }
    }
  }

  // Whether row2 can take the inner pixels of phase ph (unit taps, input step 1, at most 7 taps).
  static bool fits_row2(const Phase& ph) {
    return ph.unit_taps && ph.in_step == 1 && ph.taps() >= 1 && ph.taps() <= kMaxFixedTaps;
  }

  // The inner pixels [begin, end) of this row and the next: at least 6 for 6 or 7 taps, else at
  // least kTile2.
  void inner2(const Phase& ph, int64_t begin, int64_t end) const {
    const auto run = [&]<int64_t N, int64_t E>() {
      // Vector by vector, each over the whole run: the rows of one vector stay in L1.
      for_each_vector([&]<bool Tail>(int64_t c0, int64_t lanes) {
        overlapping(N, begin, end,
                    [&](int64_t t) { fixed_tile2<N, E, 1, Tail>(ph, t, c0, lanes); });
      });
    };
    const auto fixed = [&]<int64_t E>() {
      // 2 * N sums + 2 * E filters in registers; 7x7 maps in one tile of 7.
      if constexpr (E > 5) {
        if (end - begin == 7) return run.template operator()<7, E>();
      }
      run.template operator()<E <= 5 ? 8 : 6, E>();
    };
    with_fixed_taps(ph.taps(), fixed);
  }

  // This row (and `next`, the same kernel for the next row) over phase ph, the inner pixels of
  // both at once.
  void row2(const Phase& ph, const RowKernel& next) const {
    const int64_t begin = ph.inner_begin, end = ph.inner_end;
    if (!fits_row2(ph) || end - begin < (ph.taps() > 5 ? 6 : kTile2)) {
      row(ph);
      return next.row(ph);
    }
    border(ph, 0, begin);
    next.border(ph, 0, begin);
    inner2(ph, begin, end);
    border(ph, end, ph.count);
    next.border(ph, end, ph.count);
  }

  // Calls f.template operator()<E>() with E = taps, a compile-time count in 1 .. kMaxFixedTaps.
  template <typename F>
  static void with_fixed_taps(int64_t taps, F&& f) {
    static_assert(kMaxFixedTaps == 7);
    switch (taps) {
      case 1: return f.template operator()<1>();
      case 2: return f.template operator()<2>();
      case 3: return f.template operator()<3>();
      case 4: return f.template operator()<4>();
      case 5: return f.template operator()<5>();
      case 6: return f.template operator()<6>();
      default: return f.template operator()<7>();
    }
  }

  // The pixels [begin, end) in tiles of NT, the last one ending at `end` (overlapping the one
  // before it: its pixels are recomputed with the same result). Needs end - begin >= NT.
  template <typename Tile>
  static void overlapping(int64_t NT, int64_t begin, int64_t end, Tile&& tile) {
    for (int64_t t = begin;; t += NT) {
      t = std::min(t, end - NT);
      tile(t);
      if (t + NT >= end) break;
    }
  }

  // The inner pixels [begin, end), at least 4 of them, in tiles of NT.
  template <int64_t NT>
  void inner(const Phase& ph, int64_t begin, int64_t end) const {
    if constexpr (NT == 8) {
      if (end - begin == 7) return inner<7>(ph, begin, end);  // 7x7 maps: one exact tile
    }
    if constexpr (NT > 4 && NT != 7) {
      if (end - begin < NT) return inner<NT / 2>(ph, begin, end);
    }
    const auto fixed = [&]<int64_t E, int64_t Step>() {
      overlapping(NT, begin, end, [&](int64_t t) { fixed_tile<NT, E, Step>(ph, t); });
    };
    const auto with_step = [&]<int64_t E>() {
      if (ph.in_step == 1) return fixed.template operator()<E, 1>();
      fixed.template operator()<E, 2>();
    };
    if (!ph.unit_taps || ph.in_step > 2 || ph.taps() > kMaxFixedTaps || ph.taps() == 0) {
      return overlapping(NT, begin, end, [&](int64_t t) { tile<NT, false>(ph, t); });
    }
    with_fixed_taps(ph.taps(), with_step);
  }

  // Border pixels [begin, end), each over its taps in range: in tiles where there are many of them
  // (large filters), else one by one (a per-pixel condition on every tap costs more than the one
  // or two border pixels of a small filter gain from sharing filter loads).
  void border(const Phase& ph, int64_t begin, int64_t end) const {
    if (end - begin >= kBorderTile) {
      return overlapping(kBorderTile, begin, end,
                         [&](int64_t t) { tile<kBorderTile, true>(ph, t); });
    }
    for (int64_t t = begin; t < end; ++t) pixel(ph, t);
  }

  void row(const Phase& ph) const {
    const int64_t begin = ph.inner_begin, end = ph.inner_end;
    border(ph, 0, begin);
    if (end - begin >= 4) {
      inner<kTile>(ph, begin, end);
    } else {
      for (int64_t t = begin; t < end; ++t) pixel(ph, t);
    }
    border(ph, end, ph.count);
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
  // Output rows h and h + 1 (h even) go together where row h + 1's pairs are row h's one input
  // row down and row h's input rows are consecutive (stride 1, no dilation, away from the top and
  // bottom edges): then RowKernel::row2 computes both from pairs + 1 input rows.
  const RowPairs& rp = *g.rows;
  const int64_t row_pitch = g.in_w * g.in_pitch;
  const auto pairable = [&](int64_t h) {
    if (h + 1 >= g.out_h) return false;
    const int64_t p0 = rp.begin[h], p1 = rp.begin[h + 1], pairs = p1 - p0;
    if (pairs < 1 || rp.begin[h + 2] - p1 != pairs) return false;
    for (int64_t i = 0; i < pairs; ++i) {
      if (rp.in_row[p0 + i] != rp.in_row[p0] + i || rp.in_row[p1 + i] != rp.in_row[p0 + i] + 1 ||
          rp.w_row[p1 + i] != rp.w_row[p0 + i] || rp.in_channel[p1 + i] != rp.in_channel[p0] ||
          rp.in_channel[p0 + i] != rp.in_channel[p0]) {
        return false;
      }
    }
    return true;
  };
  // Outputs of 2 MiB and more (past L2) go straight to memory, without a read for ownership.
  const bool stream = g.N * g.out_h * g.out_w * g.channels * int64_t{sizeof(T)} >= (2 << 20);
  const int64_t row_tasks = ceil_div(g.out_h, int64_t{2});
  at::parallel_for(0, g.N * groups * row_tasks, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> in_rows[2];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t h0 = task % row_tasks * 2;
      const int64_t v_begin = task / row_tasks % groups * group;
      const int64_t n = task / (row_tasks * groups);
      const auto kernel = [&](int64_t h, std::vector<int64_t>& rows) {
        const int64_t p0 = rp.begin[h], pairs = rp.begin[h + 1] - p0;
        rows.resize(pairs);
        for (int64_t i = 0; i < pairs; ++i) {
          rows[i] = (n * g.in_h + rp.in_row[p0 + i]) * row_pitch + rp.in_channel[p0 + i];
        }
        RowKernel<T, Bytes> k{g.in, g.w, g.bias,
                              g.out + (n * g.out_h + h) * g.out_w * g.channels,
                              rows.data(), rp.w_row.data() + p0, pairs, g.in_pitch,
                              g.channels, v_begin * L,
                              std::min(g.channels, (v_begin + group) * L)};
        k.stream = stream;
        return k;
      };
      RowKernel<T, Bytes> k = kernel(h0, in_rows[0]);
      if (h0 + 1 >= g.out_h) {
        for (const Phase& ph : *g.phases) k.row(ph);
      } else if (RowKernel<T, Bytes> next = kernel(h0 + 1, in_rows[1]); !pairable(h0)) {
        for (const Phase& ph : *g.phases) k.row(ph);
        for (const Phase& ph : *g.phases) next.row(ph);
      } else {
        k.out_next = next.out;
        k.next_in = row_pitch;
        for (const Phase& ph : *g.phases) k.row2(ph, next);
      }
      if (stream) store_fence();  // order the streaming stores before the caller reads them
    }
  });
}

// run_gather in wide vectors once the channels fill most of one, else in 32-byte vectors.
template <typename T>
void gather(const Gather<T>& g) {
  if (4 * g.channels >= 3 * Vec<T, kWideVectorBytes>::lanes) {
    return run_gather<T, kWideVectorBytes>(g);
  }
  run_gather<T, 32>(g);
}

// The filter pitch for `channels`: a whole number of wide vectors.
template <typename T>
int64_t filter_pitch(int64_t channels) {
  return round_up(channels, Vec<T, kWideVectorBytes>::lanes);
}

}  // namespace convkernels::cpu::nhwc
