// General convolution over channels_last (NHWC) activations, forward and input gradient: any
// groups, stride, padding, dilation and filter shape (1x1 included).
//
// Both are correlations of a tensor `in` with filter panels: every output pixel is a sum over
// filter taps of (the row of input channels the tap reads) x (the tap's filter matrix),
//   fprop: y[pixel, g*Kg + k] = sum over taps, c < Cg of x[source, g*Cg + c] * w[g*Kg + k, c, r, s]
//   dgrad: dx[pixel, g*Cg + c] = sum over taps, k < Kg of dy[source, g*Kg + k] * w[g*Kg + k, c, r, s]
// and differ only in which pixel a tap reads (a Frame) and how the filter is packed. The output
// pixels go in register tiles of pixel_tile.h. The input gradient of a strided convolution reads,
// at input pixel (h, w), only the taps whose phase matches (h, w) modulo the stride; its frame
// therefore orders the pixels by phase, so that all the pixels of a tile read the same taps (the
// others are dropped), and each phase is a stride-1 correlation.
#include <algorithm>
#include <climits>
#include <numeric>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include "cpu_kernels.h"
#include "index_math.h"
#include "pixel_tile.h"

namespace convkernels::cpu {
namespace {

using pixel_tile::Tile;

// Most tiles a task owns: their pixels' rows are gathered once and swept by every strip of NR
// output channels (whose filter panels then stay in L2).
constexpr int64_t kMaxTilesPerTask = 16;

// A Frame orders the pixels a correlation writes into classes (pixels that read the same taps)
// and says, for a run of consecutive pixels i0 <= i < i0 + count of a class, which pixel each is
// (out_pixel[i - i0]) and which input pixel its tap (r, s) reads (source[(r * S + s) * MR + i - i0],
// left -1 where none).

// Image, row and column of consecutive pixels of images of rows x cols, from pixel i0 on.
struct GridWalk {
  int64_t rows, cols, n, row, col;

  GridWalk(int64_t rows, int64_t cols, int64_t i0)
      : rows(rows), cols(cols), n(i0 / (rows * cols)), row(i0 / cols % rows), col(i0 % cols) {}
  void next() {
    if (++col == cols) col = 0, row += 1;
    if (row == rows) row = 0, n += 1;
  }
};

// fprop's pixels: all output pixels of the batch in order; tap (r, s) of output pixel (n, p, q)
// reads input pixel (n, p*sh - ph + r*dh, q*sw - pw + s*dw).
struct ForwardFrame {
  const ConvParams& p;

  int64_t classes() const { return 1; }
  int64_t pixels(int64_t) const { return p.N * p.P * p.Q; }
  template <int64_t MR>
  void tile(int64_t, int64_t i0, int64_t count, int64_t* out_pixel, int64_t* source) const {
    GridWalk at(p.P, p.Q, i0);
    for (int64_t i = 0; i < count; ++i, at.next()) {
      out_pixel[i] = i0 + i;
      // Only the taps inside the input, rows and columns.
      const Range rows = tap_rows(at.row, p.H, p.R, p.stride_h, p.pad_h, p.dil_h);
      const Range cols = tap_rows(at.col, p.W, p.S, p.stride_w, p.pad_w, p.dil_w);
      const int64_t h0 = at.row * p.stride_h - p.pad_h, w0 = at.col * p.stride_w - p.pad_w;
      for (int64_t r = rows.begin; r < rows.end; ++r) {
        const int64_t first = (at.n * p.H + h0 + r * p.dil_h) * p.W + w0;
        for (int64_t s = cols.begin; s < cols.end; ++s) {
          source[(r * p.S + s) * MR + i] = first + s * p.dil_w;
        }
      }
    }
  }
};

// dgrad's pixels: the input pixels by phase (h mod sh, w mod sw), then image, row and column
// within the phase; tap (r, s) of input pixel (n, h, w) reads output pixel
// (n, (h + ph - r*dh) / sh, (w + pw - s*dw) / sw) where both divisions are exact. Within a phase,
// (h, w) = (phase_h + a*sh, phase_w + b*sw) for the pixel's row a and column b there, and that
// output pixel is (a + shift_r, b + shift_s) for the taps of the phase.
struct BackwardFrame {
  const ConvParams& p;
  // shift_r[phase_h * R + r], shift_s[phase_w * S + s]; kNone: not a tap of the phase.
  std::vector<int64_t> shift_r, shift_s;

  explicit BackwardFrame(const ConvParams& params)
      : p(params), shift_r(p.stride_h * p.R), shift_s(p.stride_w * p.S) {
    for (int64_t j = 0; j < p.stride_h; ++j) {
      for (int64_t r = 0; r < p.R; ++r) {
        shift_r[j * p.R + r] = shift(j + p.pad_h - r * p.dil_h, p.stride_h);
      }
    }
    for (int64_t j = 0; j < p.stride_w; ++j) {
      for (int64_t s = 0; s < p.S; ++s) {
        shift_s[j * p.S + s] = shift(j + p.pad_w - s * p.dil_w, p.stride_w);
      }
    }
  }

  int64_t classes() const { return p.stride_h * p.stride_w; }
  int64_t pixels(int64_t cls) const {
    return p.N * phase_size(p.H, cls / p.stride_w, p.stride_h) *
           phase_size(p.W, cls % p.stride_w, p.stride_w);
  }
  template <int64_t MR>
  void tile(int64_t cls, int64_t i0, int64_t count, int64_t* out_pixel, int64_t* source) const {
    const int64_t phase_h = cls / p.stride_w, phase_w = cls % p.stride_w;
    const int64_t rows = phase_size(p.H, phase_h, p.stride_h);
    const int64_t cols = phase_size(p.W, phase_w, p.stride_w);
    const int64_t* dr = shift_r.data() + phase_h * p.R;
    const int64_t* ds = shift_s.data() + phase_w * p.S;
    GridWalk at(rows, cols, i0);
    for (int64_t i = 0; i < count; ++i, at.next()) {
      out_pixel[i] =
          (at.n * p.H + phase_h + at.row * p.stride_h) * p.W + phase_w + at.col * p.stride_w;
      for (int64_t r = 0; r < p.R; ++r) {
        const int64_t oh = at.row + dr[r];
        if (dr[r] == kNone || oh < 0 || oh >= p.P) continue;
        for (int64_t s = 0; s < p.S; ++s) {
          const int64_t ow = at.col + ds[s];
          if (ds[s] == kNone || ow < 0 || ow >= p.Q) continue;
          source[(r * p.S + s) * MR + i] = (at.n * p.P + oh) * p.Q + ow;
        }
      }
    }
  }

  static constexpr int64_t kNone = INT64_MIN / 2;
  // The pixels of phase j of a dimension of `size` at `stride`.
  static int64_t phase_size(int64_t size, int64_t j, int64_t stride) {
    return ceil_div(std::max<int64_t>(size - j, 0), stride);
  }
  // offset / stride when exact, else kNone.
  static int64_t shift(int64_t offset, int64_t stride) {
    return offset % stride == 0 ? offset / stride : kNone;
  }
};

// dgrad's pixels where the filter tiles the input (stride = filter size, no padding or dilation,
// H = P * R and W = Q * S: a UNet's 2x2 stride-2 transposed convolution, the input gradient of a
// ConvNeXt's patchifying convolutions): every input pixel reads one output pixel, through one tap.
// The correlation is then a 1x1 one over the output pixels, whose R*S taps are blocks of columns
// that all read the pixel's row (so a tile's setup and rows serve R*S times the work of a
// BackwardFrame tile, which reads one tap). Output pixel (n, oh, ow) writes input pixels
// (n, oh*R + r, ow*S + s); out_pixel is the one of tap (0, 0), and the caller's channel(tap, c)
// adds the offset of tap (r, s).
struct TilingFrame {
  const ConvParams& p;

  static bool applies(const ConvParams& p) {
    return p.groups == 1 && p.R * p.S > 1 && p.stride_h == p.R && p.stride_w == p.S &&
           p.pad_h == 0 && p.pad_w == 0 && p.dil_h == 1 && p.dil_w == 1 && p.H == p.P * p.R &&
           p.W == p.Q * p.S;
  }
  int64_t classes() const { return 1; }
  int64_t pixels(int64_t) const { return p.N * p.P * p.Q; }
  template <int64_t MR>
  void tile(int64_t, int64_t i0, int64_t count, int64_t* out_pixel, int64_t* source) const {
    GridWalk at(p.P, p.Q, i0);
    for (int64_t i = 0; i < count; ++i, at.next()) {
      out_pixel[i] = (at.n * p.H + at.row * p.R) * p.W + at.col * p.S;
      source[i] = i0 + i;
    }
  }
};

// The channels of a correlation: `count` independent blocks (the groups, or with packed groups
// runs of NR / G groups); block g reads `depth` channels of a pixel from channel g * in_step and
// writes `cols` channels.
struct Blocks {
  int64_t count, depth, in_step, cols;
};

// Where the tiles read the filter: the panel of block g, strip t and tap u starts at
// base + g * block_step + t * strip_step + u * tap_step and holds a row of NR columns per input
// channel d, `pitch` elements apart.
template <typename acc_t>
struct Panels {
  at::Tensor storage;  // the packed panels
  const acc_t* base;
  int64_t pitch, tap_step, strip_step, block_step;

  const acc_t* at(int64_t g, int64_t strip, int64_t u) const {
    return base + g * block_step + strip * strip_step + u * tap_step;
  }
};

// A weight K x C/g x R x S contiguous in either memory format: the taps of (k, c) start at
// at(k, c), tap u = r*S + s being offset[u] elements further.
template <typename scalar_t>
struct FilterTaps {
  const scalar_t* w;
  int64_t k_stride, c_stride;
  std::vector<int64_t> offset;

  explicit FilterTaps(const at::Tensor& weight)
      : w(weight.const_data_ptr<scalar_t>()),
        k_stride(weight.stride(0)),
        c_stride(weight.stride(1)) {
    for (int64_t r = 0; r < weight.size(2); ++r) {
      for (int64_t s = 0; s < weight.size(3); ++s) {
        offset.push_back(r * weight.stride(2) + s * weight.stride(3));
      }
    }
  }
  const scalar_t* at(int64_t k, int64_t c) const { return w + k * k_stride + c * c_stride; }
};

// Filter panels [g][strip][tap][d][j] of NR columns for every block g: column j of strip t is the
// block's output channel t*NR + j, d its input channel; filter(g, t*NR + j, d) points at tap 0 of
// that pair, and tap u is taps.offset[u] further. The columns past `cols` are zeros.
//
// Every filter here is some f(column) + d * stride, so which of its indices are adjacent in memory
// is a property of the strip, and the strip is read in the order that reads whole cache lines:
// - columns adjacent (dgrad's panels of a channels_last weight): a row of a tap's panel is a copy;
// - depth adjacent (fprop's panels of a channels_last weight, and of any 1x1 weight): a line of
//   depth of each column and tap at a time, transposed into the panel's rows;
// - neither (an NCHW weight with more than one tap, whose taps of a column and depth are
//   adjacent): a row of NR columns at a time, gathered.
// The weight's lines are fetched ahead by software prefetch (kAhead rows of columns, or the next
// line of depth): in the order a panel needs them they are a page or more apart, which the
// hardware prefetchers do not follow (0.77 -> 0.48 ms for an 8 MiB filter).
template <typename acc_t, typename scalar_t, typename Filter>
Panels<acc_t> pack_panels(const Blocks& b, const FilterTaps<scalar_t>& taps, const Filter& filter) {
  constexpr int64_t NR = Tile<acc_t>::cols, kLine = 64 / int64_t(sizeof(scalar_t));
  const int64_t RS = taps.offset.size(), strips = ceil_div(b.cols, NR), panel = RS * b.depth * NR;
  // A tensor's storage is 64-byte aligned, so that no vector load of a panel row straddles two
  // cache lines; every element is written below (no zero-filling pass over megabytes).
  at::Tensor panels =
      at::empty({b.count * strips * panel}, at::dtype(c10::CppTypeToScalarType<acc_t>::value));
  at::parallel_for(0, b.count * strips, 1, [&](int64_t begin, int64_t end) {
    for (int64_t gs = begin; gs < end; ++gs) {
      const int64_t g = gs / strips, j0 = gs % strips * NR, n_cols = std::min(NR, b.cols - j0);
      acc_t* dst = panels.mutable_data_ptr<acc_t>() + gs * panel;
      const auto row = [&](int64_t t, int64_t d) { return dst + (t * b.depth + d) * NR; };
      const scalar_t* first = filter(g, j0, 0);
      bool columns_adjacent = true;
      for (int64_t j = 1; j < n_cols; ++j) {
        columns_adjacent = columns_adjacent && filter(g, j0 + j, 0) == first + j;
      }
      constexpr int64_t kAhead = 8;  // steps of depth, where a step reads a row of columns
      if (columns_adjacent) {
        for (int64_t d = 0; d < b.depth; ++d) {
          for (int64_t t = 0; t < RS; ++t) {
            const scalar_t* src = filter(g, j0, d) + taps.offset[t];
            if (d + kAhead < b.depth) {
              const scalar_t* ahead = filter(g, j0, d + kAhead) + taps.offset[t];
              __builtin_prefetch(ahead);
              __builtin_prefetch(ahead + n_cols - 1);
            }
            for (int64_t j = 0; j < n_cols; ++j) row(t, d)[j] = static_cast<acc_t>(src[j]);
          }
        }
      } else if (b.depth > 1 && filter(g, j0, 1) == first + 1) {
        for (int64_t d0 = 0; d0 < b.depth; d0 += kLine) {
          const int64_t n_depth = std::min(kLine, b.depth - d0);
          for (int64_t j = 0; j < n_cols; ++j) {
            const scalar_t* column = filter(g, j0 + j, d0);
            for (int64_t t = 0; t < RS; ++t) {
              const scalar_t* src = column + taps.offset[t];
              __builtin_prefetch(src + kLine);  // this column and tap's line of the next step
              for (int64_t d = 0; d < n_depth; ++d) {
                row(t, d0 + d)[j] = static_cast<acc_t>(src[d]);
              }
            }
          }
        }
      } else {
        for (int64_t d = 0; d < b.depth; ++d) {
          const scalar_t* tap0[NR];
          for (int64_t j = 0; j < n_cols; ++j) {
            tap0[j] = filter(g, j0 + j, d);
            if (d + kAhead < b.depth) __builtin_prefetch(filter(g, j0 + j, d + kAhead));
          }
          for (int64_t t = 0; t < RS; ++t) {
            const int64_t offset = taps.offset[t];
            for (int64_t j = 0; j < n_cols; ++j) row(t, d)[j] = static_cast<acc_t>(tap0[j][offset]);
          }
        }
      }
      for (int64_t t = 0; n_cols < NR && t < RS; ++t) {
        for (int64_t d = 0; d < b.depth; ++d) {
          std::fill(row(t, d) + n_cols, row(t, d) + NR, acc_t(0));
        }
      }
    }
  });
  return {panels, panels.const_data_ptr<acc_t>(), NR, b.depth * NR, panel, strips * panel};
}

// The taps a tile reads, from the frame's source[(r*S + s) * MR + i] (-1: none): those some pixel
// reads are kept, moved to the front (tap[u] and source[u * MR + i], u < count), each `depth` long.
// With `rows_merge`, where every row r of the filter that the tile reads has all MR pixels reading
// S adjacent pixels (no dilation, no padding in reach: the interior of a forward convolution), a
// row's S taps are kept as one tap S times as deep, at tap (r, 0): a pixel's S adjacent rows of
// channels are one run in memory, as are the S taps' panels ([s][d][j] is [s*depth + d][j]). One
// tap of 3x64 instead of three of 64 (a 7x7 filter over 3 channels: one of 21 instead of seven of
// 3) sets up fewer rows and runs longer loops.
struct TileTaps {
  int64_t count, depth;
};

template <int64_t MR>
TileTaps keep_taps(int64_t R, int64_t S, int64_t depth, bool rows_merge, int64_t* source,
                   int64_t* tap) {
  bool merge = rows_merge && S > 1;
  for (int64_t r = 0; merge && r < R; ++r) {
    const int64_t* row = source + r * S * MR;  // [s][i]
    bool absent = true, adjacent = true;
    for (int64_t i = 0; i < MR; ++i) adjacent = adjacent && row[i] >= 0;
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t i = 0; i < MR; ++i) {
        absent = absent && row[s * MR + i] < 0;
        adjacent = adjacent && row[s * MR + i] == row[i] + s;
      }
    }
    merge = absent || adjacent;
  }
  const int64_t step = merge ? S : 1;
  int64_t count = 0;
  for (int64_t rs = 0; rs < R * S; rs += step) {
    const int64_t* s = source + rs * MR;
    if (std::none_of(s, s + MR, [](int64_t v) { return v >= 0; })) continue;
    tap[count] = rs;
    std::copy(s, s + MR, source + count * MR);
    ++count;
  }
  return {count, step * depth};
}

// out[out_pixel, channel(g, j)] = bias[g*cols + j] + the correlation above, for every pixel of
// `frame`, block g and j < cols. `in` has in_channels per pixel, `out` out_channels, and
// channel(g, j + 1) = channel(g, j) + channel_step. PackedG: the group width of packed groups, or 0.
template <int64_t PackedG, typename scalar_t, typename Frame, typename Channel>
void correlate(const ConvParams& p, const Frame& frame, const scalar_t* in, int64_t in_channels,
               const Blocks& blocks, const Panels<at::opmath_type<scalar_t>>& panels,
               const scalar_t* bias, Channel channel, int64_t channel_step, int64_t out_channels,
               scalar_t* out) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t MR = Tile<acc_t>::rows, NR = Tile<acc_t>::cols;
  const int64_t G = blocks.count, depth = blocks.depth, cols = blocks.cols;
  const int64_t RS = p.R * p.S, strips = ceil_div(cols, NR);

  // Tasks: runs of at most kMaxTilesPerTask tiles of one class, the tiles of a class split evenly
  // among its tasks, and as many tasks per thread (parallel_for hands each thread one contiguous
  // range of tasks, so equal tasks are equal shares). Where all classes are alike (dgrad's phases
  // when the stride divides the input), run b of every class comes before run b + 1 of any:
  // neighbouring tasks, which run on the same thread, then read the same input rows.
  const int64_t classes = frame.classes(), threads = at::get_num_threads();
  std::vector<int64_t> class_tiles(classes);
  bool alike = true;
  for (int64_t cls = 0; cls < classes; ++cls) {
    class_tiles[cls] = ceil_div(frame.pixels(cls), MR);
    alike = alike && class_tiles[cls] == class_tiles[0];
  }
  const int64_t tiles = std::accumulate(class_tiles.begin(), class_tiles.end(), int64_t(0));
  const int64_t tasks_per_thread = ceil_div(tiles, threads * kMaxTilesPerTask);
  const int64_t tiles_per_task = ceil_div(tiles, threads * tasks_per_thread);
  std::vector<int64_t> first_task{0};  // of each class
  for (int64_t cls = 0; cls < classes; ++cls) {
    first_task.push_back(first_task.back() + ceil_div(class_tiles[cls], tiles_per_task));
  }
  // The class of a task, and its first tile and tile count within the class.
  const auto locate = [&](int64_t task) -> std::tuple<int64_t, int64_t, int64_t> {
    const int64_t cls = alike ? task % classes
                              : std::upper_bound(first_task.begin(), first_task.end(), task) -
                                    first_task.begin() - 1;
    const int64_t run = alike ? task / classes : task - first_task[cls];
    const int64_t runs = first_task[cls + 1] - first_task[cls], n = class_tiles[cls];
    const int64_t first = run * n / runs;
    return {cls, first, (run + 1) * n / runs - first};
  };
  // A pixel's rows of adjacent taps are one row where it holds all the channels a block reads, and
  // the panels of adjacent taps one panel (keep_taps).
  const bool rows_merge = PackedG == 0 && G == 1 && depth == in_channels &&
                          panels.pitch == NR && panels.tap_step == depth * NR;
  const std::vector<scalar_t> zeros(std::max(depth, NR), scalar_t(0));
  // The accumulators' start: the bias of each strip's channels, zero-padded to NR.
  std::vector<acc_t> init(G * strips * NR, acc_t(0));
  for (int64_t g = 0; bias && g < G; ++g) {
    for (int64_t j = 0; j < cols; ++j) {
      init[(g * strips + j / NR) * NR + j % NR] = static_cast<acc_t>(bias[g * cols + j]);
    }
  }

  at::parallel_for(0, first_task.back(), 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> out_pixel(kMaxTilesPerTask * MR);
    // Per tile t: the taps some pixel reads (tap[t * RS + u], u < n_taps[t], each tap_depth[t]
    // channels deep), the pixel each of them reads for each pixel of the tile (source[(t * RS + u)
    // * MR + i], -1 for none), and per group the rows those are (rows[...], the same index).
    std::vector<int64_t> tap(kMaxTilesPerTask * RS), n_taps(kMaxTilesPerTask);
    std::vector<int64_t> tap_depth(kMaxTilesPerTask);
    std::vector<int64_t> source(kMaxTilesPerTask * RS * MR);
    std::vector<const scalar_t*> rows(kMaxTilesPerTask * RS * MR);
    std::vector<const acc_t*> tap_panels(RS);
    acc_t tile[MR * NR];
    for (int64_t task = begin; task < end; ++task) {
      const auto [cls, first_tile, n_tiles] = locate(task);
      const int64_t pixels = frame.pixels(cls), pix0 = first_tile * MR;
      for (int64_t t = 0; t < n_tiles; ++t) {
        int64_t* tile_source = source.data() + t * RS * MR;
        std::fill(tile_source, tile_source + RS * MR, -1);
        frame.template tile<MR>(cls, pix0 + t * MR, std::min(MR, pixels - pix0 - t * MR),
                                out_pixel.data() + t * MR, tile_source);
        const TileTaps kept =
            keep_taps<MR>(p.R, p.S, depth, rows_merge, tile_source, tap.data() + t * RS);
        n_taps[t] = kept.count;
        tap_depth[t] = kept.depth;
      }
      for (int64_t g = 0; g < G; ++g) {
        for (int64_t t = 0; t < n_tiles; ++t) {
          for (int64_t e = t * RS * MR; e < (t * RS + n_taps[t]) * MR; ++e) {
            rows[e] = source[e] >= 0 ? in + source[e] * in_channels + g * blocks.in_step
                                   : zeros.data();
          }
        }
        for (int64_t strip = 0; strip < strips; ++strip) {
          const int64_t j0 = strip * NR, n_cols = std::min(NR, cols - j0);
          // Full strips of contiguous channels are stored from the registers.
          const bool direct =
              std::is_same_v<scalar_t, acc_t> && n_cols == NR && channel_step == 1;
          const int64_t first_channel = channel(g, j0);
          for (int64_t t = 0; t < n_tiles; ++t) {
            // The first strip reads each tile's rows from memory: fetch the next tile's meanwhile
            // (once, where every block reads the same rows).
            if (strip == 0 && (g == 0 || blocks.in_step != 0) && t + 1 < n_tiles) {
              const scalar_t* const* next = rows.data() + (t + 1) * RS * MR;
              for (int64_t e = 0; e < n_taps[t + 1] * MR; ++e) {
                for (int64_t d = 0; d < tap_depth[t + 1]; d += 64 / int64_t(sizeof(scalar_t))) {
                  __builtin_prefetch(next[e] + d);
                }
              }
            }
            for (int64_t u = 0; u < n_taps[t]; ++u) {
              tap_panels[u] = panels.at(g, strip, tap[t * RS + u]);
            }
            const int64_t n_pixels = std::min(MR, pixels - pix0 - t * MR);
            scalar_t* dst[MR];
            for (int64_t i = 0; i < n_pixels; ++i) {
              dst[i] = out + out_pixel[t * MR + i] * out_channels + first_channel;
            }
            const acc_t* start = init.data() + (g * strips + strip) * NR;
            const pixel_tile::TileOut<acc_t> tile_out{
                direct ? reinterpret_cast<acc_t* const*>(dst) : nullptr, n_pixels, tile};
            if constexpr (PackedG == 0) {
              pixel_tile::gathered_product(n_taps[t], tap_depth[t], rows.data() + t * RS * MR,
                                           tap_panels.data(), panels.pitch, start, tile_out);
            } else {
              pixel_tile::packed_groups_product<PackedG>(n_taps[t], rows.data() + t * RS * MR,
                                                         tap_panels.data(), start, tile_out);
            }
            if (direct) continue;
            for (int64_t i = 0; i < n_pixels; ++i) {
              for (int64_t j = 0; j < n_cols; ++j) {
                dst[i][j * channel_step] = static_cast<scalar_t>(tile[i * NR + j]);
              }
            }
          }
        }
      }
    }
  });
}

// First layers read few channels (RGB: 3), so that a tap is too shallow for the tiles' loops even
// with a filter row's taps merged (9 deep for a 3x3 filter, and the tile set up once per row).
// Their im2col (each output pixel's R*S*C inputs as one row, zeros in the padding) makes them a
// 1x1 convolution R*S*C deep (27 for 3x3 over RGB, 147 for 7x7).
bool lowers_to_pointwise(const ConvParams& p) {
  return p.groups == 1 && p.C <= 4 && p.R * p.S > 1;
}

// cols[oh - oh0, ow, (r*S + s)*C + c] = x[n, oh*sh - ph + r*dh, ow*sw - pw + s*dw, c] for the
// output rows oh0 <= oh < oh0 + rows of image n, or 0 where that pixel is padding (NHWC x).
// Without dilation a filter row in range reads S*C adjacent inputs: one run. (Plain loops: at 3 to
// 21 elements a library copy costs more than the copy.)
template <typename scalar_t>
void im2col_nhwc(const ConvParams& p, const scalar_t* x, int64_t n, int64_t oh0, int64_t rows,
                 scalar_t* cols) {
  const int64_t SC = p.S * p.C, RSC = p.R * SC;
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t oh = oh0 + row;
      for (int64_t r = 0; r < p.R; ++r) {
        const int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
        const bool inside = ih >= 0 && ih < p.H;
        const scalar_t* src = x + (n * p.H + (inside ? ih : 0)) * p.W * p.C;
        for (int64_t ow = 0; ow < p.Q; ++ow) {
          scalar_t* dst = cols + (row * p.Q + ow) * RSC + r * SC;
          const int64_t iw0 = ow * p.stride_w - p.pad_w;
          if (inside && p.dil_w == 1 && iw0 >= 0 && iw0 + p.S <= p.W) {
            for (int64_t e = 0; e < SC; ++e) dst[e] = src[iw0 * p.C + e];
            continue;
          }
          for (int64_t s = 0; s < p.S; ++s) {
            const int64_t iw = iw0 + s * p.dil_w;
            const bool in_row = inside && iw >= 0 && iw < p.W;
            for (int64_t c = 0; c < p.C; ++c) {
              dst[s * p.C + c] = in_row ? src[iw * p.C + c] : scalar_t(0);
            }
          }
        }
      }
    }
  });
}

// The im2col is made and used in chunks of output rows of about this size, which stay in cache
// in between (the whole of DeepLab's 7x7 stem at 512x512 would be 77 MB, slower than no im2col).
constexpr int64_t kIm2colBytes = int64_t(4) << 20;

}  // namespace

void general_fprop_nhwc(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                        const at::Tensor& bias, const at::Tensor& output) {
  if (lowers_to_pointwise(p)) {
    ConvParams q = p;  // the 1x1 convolution over a chunk of the im2col: one image's rows
    q.N = 1, q.C = p.R * p.S * p.C, q.W = p.Q, q.R = q.S = 1;
    q.stride_h = q.stride_w = q.dil_h = q.dil_w = 1;
    q.pad_h = q.pad_w = 0;
    const int64_t chunk =
        std::clamp<int64_t>(kIm2colBytes / (p.Q * q.C * input.element_size()), 1, p.P);
    const at::Tensor cols = at::empty({1, q.C, chunk, p.Q},
                                      input.options().memory_format(at::MemoryFormat::ChannelsLast));
    // Filter k's taps in im2col order (r, s, c): a channels_last weight as it is.
    const at::Tensor taps = weight.permute({0, 2, 3, 1}).reshape({p.K, q.C, 1, 1});
    for (int64_t n = 0; n < p.N; ++n) {
      for (int64_t oh0 = 0; oh0 < p.P; oh0 += chunk) {
        q.H = q.P = std::min(chunk, p.P - oh0);
        AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
                                        "im2col_nhwc", [&] {
          im2col_nhwc(p, input.const_data_ptr<scalar_t>(), n, oh0, q.H,
                      cols.mutable_data_ptr<scalar_t>());
        });
        general_fprop_nhwc(q, cols.narrow(2, 0, q.H), taps, bias,
                           output.select(0, n).narrow(1, oh0, q.H).unsqueeze(0));
      }
    }
    return;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "general_fprop_nhwc", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const FilterTaps<scalar_t> taps(weight);
        const scalar_t* b = bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr;
        const int64_t Cg = p.c_per_group(), Kg = p.k_per_group();
        pixel_tile::with_packed_groups<scalar_t>(p, [&](auto packed) {
          constexpr int64_t G = decltype(packed)::value;
          if constexpr (G == 0) {
            const Blocks blocks{p.groups, Cg, Cg, Kg};
            const auto panels = pack_panels<acc_t>(blocks, taps, [&](int64_t g, int64_t k, int64_t c) {
              return taps.at(g * Kg + k, c);
            });
            correlate<0>(p, ForwardFrame{p}, input.const_data_ptr<scalar_t>(), p.C, blocks, panels,
                         b, [&p](int64_t g, int64_t k) { return p.output_channel(g, k); },
                         p.output_channel_step(), p.K, output.mutable_data_ptr<scalar_t>());
          } else {
            // Blocks of NR output channels, each reading the NR input channels of its groups.
            constexpr int64_t NR = Tile<acc_t>::cols;
            const Blocks blocks{p.K / NR, G, NR, NR};
            const auto panels = pack_panels<acc_t>(blocks, taps, [&](int64_t g, int64_t j, int64_t d) {
              return taps.at(g * NR + j, d);
            });
            correlate<G>(p, ForwardFrame{p}, input.const_data_ptr<scalar_t>(), p.C, blocks, panels,
                         b, [](int64_t g, int64_t j) { return g * NR + j; }, 1, p.K,
                         output.mutable_data_ptr<scalar_t>());
          }
        });
      });
}

void general_dgrad_nhwc(const ConvParams& p, const at::Tensor& grad_output,
                        const at::Tensor& weight, const at::Tensor& bias,
                        const at::Tensor& grad_input) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad_output.scalar_type(), "general_dgrad_nhwc", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const FilterTaps<scalar_t> taps(weight);
        const scalar_t* b = bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr;
        const int64_t Cg = p.c_per_group(), Kg = p.k_per_group(), RS = p.R * p.S;
        pixel_tile::with_packed_groups<scalar_t>(p, [&](auto packed) {
          constexpr int64_t G = decltype(packed)::value;
          // The filter transposed: output channel c of the correlation, input channel k.
          const auto filter = [&](int64_t group, int64_t c, int64_t k) {
            return taps.at(group * Kg + k, c);
          };
          if constexpr (G == 0) {
            if (TilingFrame::applies(p)) {
              // Blocks: the taps, each all C columns over the same K channels of dy (in_step 0).
              // Their panels are the usual ones (packed reading each filter row once), block g
              // being tap g.
              const Blocks blocks{RS, p.K, 0, p.C};
              const auto by_tap = pack_panels<acc_t>(Blocks{1, p.K, p.K, p.C}, taps, filter);
              const Panels<acc_t> panels{by_tap.storage, by_tap.base, by_tap.pitch, 0,
                                         by_tap.strip_step, by_tap.tap_step};
              std::vector<scalar_t> tap_bias;  // the bias of every block's columns
              for (int64_t tap = 0; b && tap < RS; ++tap) {
                tap_bias.insert(tap_bias.end(), b, b + p.C);
              }
              ConvParams one_tap = p;  // the correlation's view: a 1x1 filter
              one_tap.R = one_tap.S = 1;
              return correlate<0>(
                  one_tap, TilingFrame{p}, grad_output.const_data_ptr<scalar_t>(), p.K, blocks,
                  panels, b ? tap_bias.data() : nullptr,
                  [&p](int64_t tap, int64_t c) { return (tap / p.S * p.W + tap % p.S) * p.C + c; },
                  1, p.C, grad_input.mutable_data_ptr<scalar_t>());
            }
            // Packed even where a 1x1 weight could be read as its own panels (row k holding the
            // Cg columns of depth k): with Cg = 1024 its rows are 4 KiB apart, all in one set of
            // each cache, and the panels never stay cached (1024->2048 at 64x64 grad_input: 218 ms
            // read in place, 73 ms packed).
            const Blocks blocks{p.groups, Kg, Kg, Cg};
            const auto panels = pack_panels<acc_t>(blocks, taps, filter);
            correlate<0>(p, BackwardFrame{p}, grad_output.const_data_ptr<scalar_t>(), p.K, blocks,
                         panels, b, [Cg](int64_t g, int64_t c) { return g * Cg + c; }, 1, p.C,
                         grad_input.mutable_data_ptr<scalar_t>());
          } else {
            constexpr int64_t NR = Tile<acc_t>::cols;
            const Blocks blocks{p.C / NR, G, NR, NR};
            const auto panels = pack_panels<acc_t>(blocks, taps, [&](int64_t g, int64_t j, int64_t d) {
              const int64_t c = g * NR + j;  // over all groups
              return filter(c / Cg, c % Cg, d);
            });
            correlate<G>(p, BackwardFrame{p}, grad_output.const_data_ptr<scalar_t>(), p.K, blocks,
                         panels, b, [](int64_t g, int64_t j) { return g * NR + j; }, 1, p.C,
                         grad_input.mutable_data_ptr<scalar_t>());
          }
        });
      });
}

}  // namespace convkernels::cpu
