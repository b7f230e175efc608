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
#include <type_traits>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "cpu_kernels.h"
#include "index_math.h"
#include "pixel_tile.h"

namespace convkernels::cpu {
namespace {

using pixel_tile::Tile;

// Most tiles a task owns: their pixels' rows are gathered once and swept by every strip of NR
// output channels (whose filter panels then stay in L2).
constexpr int64_t kMaxTilesPerTask = 16;

// fprop's pixels: all output pixels of the batch in order; tap (r, s) of output pixel (n, p, q)
// reads input pixel (n, p*sh - ph + r*dh, q*sw - pw + s*dw).
struct ForwardFrame {
  const ConvParams& p;

  int64_t classes() const { return 1; }
  int64_t pixels(int64_t) const { return p.N * p.P * p.Q; }
  int64_t out_pixel(int64_t, int64_t i) const { return i; }
  // src[r * S + s]: the input pixel tap (r, s) reads, or -1 (padding).
  void sources(int64_t, int64_t i, int64_t* src) const {
    const int64_t n = i / (p.P * p.Q), oh = i / p.Q % p.P, ow = i % p.Q;
    for (int64_t r = 0; r < p.R; ++r) {
      const int64_t h = oh * p.stride_h - p.pad_h + r * p.dil_h;
      for (int64_t s = 0; s < p.S; ++s) {
        const int64_t w = ow * p.stride_w - p.pad_w + s * p.dil_w;
        const bool inside = h >= 0 && h < p.H && w >= 0 && w < p.W;
        src[r * p.S + s] = inside ? (n * p.H + h) * p.W + w : -1;
      }
    }
  }
};

// dgrad's pixels: the input pixels by phase (h mod sh, w mod sw), then image, row and column
// within the phase; tap (r, s) of input pixel (n, h, w) reads output pixel
// (n, (h + ph - r*dh) / sh, (w + pw - s*dw) / sw) where both divisions are exact.
struct BackwardFrame {
  const ConvParams& p;

  int64_t classes() const { return p.stride_h * p.stride_w; }
  int64_t rows(int64_t phase) const {
    return ceil_div(std::max<int64_t>(p.H - phase, 0), p.stride_h);
  }
  int64_t cols(int64_t phase) const {
    return ceil_div(std::max<int64_t>(p.W - phase, 0), p.stride_w);
  }
  int64_t pixels(int64_t cls) const {
    return p.N * rows(cls / p.stride_w) * cols(cls % p.stride_w);
  }
  int64_t out_pixel(int64_t cls, int64_t i) const {
    const int64_t ph = cls / p.stride_w, pw = cls % p.stride_w;
    const int64_t a = rows(ph), b = cols(pw);
    const int64_t n = i / (a * b), h = ph + i / b % a * p.stride_h, w = pw + i % b * p.stride_w;
    return (n * p.H + h) * p.W + w;
  }
  void sources(int64_t cls, int64_t i, int64_t* src) const {
    const int64_t pixel = out_pixel(cls, i);
    const int64_t n = pixel / (p.H * p.W), h = pixel / p.W % p.H, w = pixel % p.W;
    for (int64_t r = 0; r < p.R; ++r) {
      const int64_t oh = source(h + p.pad_h - r * p.dil_h, p.stride_h, p.P);
      for (int64_t s = 0; s < p.S; ++s) {
        const int64_t ow = source(w + p.pad_w - s * p.dil_w, p.stride_w, p.Q);
        src[r * p.S + s] = oh >= 0 && ow >= 0 ? (n * p.P + oh) * p.Q + ow : -1;
      }
    }
  }
  // The output index that `offset` = index * stride names, or -1 if none does.
  static int64_t source(int64_t offset, int64_t stride, int64_t size) {
    if (offset < 0 || offset % stride != 0 || offset / stride >= size) return -1;
    return offset / stride;
  }
};

// Filter panels [g][strip][tap][d][j] of NR columns (zero past `cols`): column j of strip t is
// output channel t*NR + j of the correlation, d its input channel. fprop: (j, d) = (k, c);
// dgrad (transposed): (j, d) = (c, k).
template <typename acc_t, typename scalar_t>
std::vector<acc_t> pack_panels(const ConvParams& p, const scalar_t* w, bool transposed) {
  constexpr int64_t NR = Tile<acc_t>::cols;
  const int64_t Kg = p.k_per_group(), Cg = p.c_per_group(), RS = p.R * p.S, G = p.groups;
  const int64_t cols = transposed ? Cg : Kg, depth = transposed ? Kg : Cg;
  const int64_t strips = ceil_div(cols, NR), panel = RS * depth * NR;
  std::vector<acc_t> panels(G * strips * panel);
  at::parallel_for(0, G * strips, 1, [&](int64_t begin, int64_t end) {
    for (int64_t gs = begin; gs < end; ++gs) {
      const int64_t g = gs / strips, j0 = gs % strips * NR;
      acc_t* dst = panels.data() + gs * panel;
      for (int64_t j = 0; j < NR; ++j) {
        for (int64_t d = 0; d < depth; ++d) {
          const bool real = j0 + j < cols;
          const int64_t k = transposed ? d : j0 + j, c = transposed ? j0 + j : d;
          const scalar_t* src = w + ((g * Kg + k) * Cg + c) * RS;
          for (int64_t t = 0; t < RS; ++t) {
            dst[(t * depth + d) * NR + j] = real ? static_cast<acc_t>(src[t]) : acc_t(0);
          }
        }
      }
    }
  });
  return panels;
}

// out[out_pixel, channel(g, j)] = bias[g*cols + j] + the correlation above, for every pixel of
// `frame`, group g and j < cols. `in` has in_channels per pixel, group g's depth channels from
// g * depth; `out` has out_channels per pixel, channel(g, j + 1) = channel(g, j) + channel_step.
template <typename scalar_t, typename Frame, typename Channel>
void correlate(const ConvParams& p, const Frame& frame, const scalar_t* in, int64_t in_channels,
               int64_t depth, const std::vector<at::opmath_type<scalar_t>>& panels, int64_t cols,
               const scalar_t* bias, Channel channel, int64_t channel_step, int64_t out_channels,
               scalar_t* out) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t MR = Tile<acc_t>::rows, NR = Tile<acc_t>::cols;
  const int64_t G = p.groups, RS = p.R * p.S, strips = ceil_div(cols, NR);
  const int64_t panel = RS * depth * NR;

  // Tasks: blocks of tiles of one class, at least a few per thread.
  int64_t tiles = 0;
  for (int64_t cls = 0; cls < frame.classes(); ++cls) tiles += ceil_div(frame.pixels(cls), MR);
  const int64_t tiles_per_task =
      std::clamp<int64_t>(tiles / (4 * at::get_num_threads()), 1, kMaxTilesPerTask);
  std::vector<int64_t> first_task{0};  // of each class
  for (int64_t cls = 0; cls < frame.classes(); ++cls) {
    first_task.push_back(first_task.back() +
                         ceil_div(ceil_div(frame.pixels(cls), MR), tiles_per_task));
  }
  const std::vector<scalar_t> zeros(depth, scalar_t(0));
  // The accumulators' start: the bias of each strip's channels, zero-padded to NR.
  std::vector<acc_t> init(G * strips * NR, acc_t(0));
  for (int64_t g = 0; bias && g < G; ++g) {
    for (int64_t j = 0; j < cols; ++j) {
      init[(g * strips + j / NR) * NR + j % NR] = static_cast<acc_t>(bias[g * cols + j]);
    }
  }

  at::parallel_for(0, first_task.back(), 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> src(RS), out_pixel(kMaxTilesPerTask * MR);
    // Per tile t: the taps some pixel reads (tap[t * RS + u], u < n_taps[t]), the pixel each of
    // them reads for each pixel of the tile (source[(t * RS + u) * MR + i], -1 for none), and per
    // group the rows those are (rows[...], the same index).
    std::vector<int64_t> tap(kMaxTilesPerTask * RS), n_taps(kMaxTilesPerTask);
    std::vector<int64_t> source(kMaxTilesPerTask * RS * MR);
    std::vector<const scalar_t*> rows(kMaxTilesPerTask * RS * MR);
    std::vector<const acc_t*> tap_panels(RS);
    acc_t tile[MR * NR];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t cls = std::upper_bound(first_task.begin(), first_task.end(), task) -
                          first_task.begin() - 1;
      const int64_t pixels = frame.pixels(cls);
      const int64_t pix0 = (task - first_task[cls]) * tiles_per_task * MR;
      const int64_t n_tiles = std::min(tiles_per_task, ceil_div(pixels - pix0, MR));
      for (int64_t t = 0; t < n_tiles; ++t) {
        int64_t* tile_source = source.data() + t * RS * MR;
        std::fill(tile_source, tile_source + RS * MR, -1);
        for (int64_t i = 0; i < MR && pix0 + t * MR + i < pixels; ++i) {
          out_pixel[t * MR + i] = frame.out_pixel(cls, pix0 + t * MR + i);
          frame.sources(cls, pix0 + t * MR + i, src.data());
          for (int64_t rs = 0; rs < RS; ++rs) tile_source[rs * MR + i] = src[rs];
        }
        // Keep the taps some pixel reads, moved to the front.
        n_taps[t] = 0;
        for (int64_t rs = 0; rs < RS; ++rs) {
          const int64_t* s = tile_source + rs * MR;
          if (std::none_of(s, s + MR, [](int64_t v) { return v >= 0; })) continue;
          const int64_t u = n_taps[t]++;
          tap[t * RS + u] = rs;
          std::copy(s, s + MR, tile_source + u * MR);
        }
      }
      for (int64_t g = 0; g < G; ++g) {
        for (int64_t t = 0; t < n_tiles; ++t) {
          for (int64_t e = t * RS * MR; e < (t * RS + n_taps[t]) * MR; ++e) {
            rows[e] = source[e] >= 0 ? in + source[e] * in_channels + g * depth : zeros.data();
          }
        }
        for (int64_t strip = 0; strip < strips; ++strip) {
          const int64_t j0 = strip * NR, n_cols = std::min(NR, cols - j0);
          const acc_t* strip_panels = panels.data() + (g * strips + strip) * panel;
          // Full strips of contiguous channels are stored from the registers.
          const bool direct =
              std::is_same_v<scalar_t, acc_t> && n_cols == NR && channel_step == 1;
          for (int64_t t = 0; t < n_tiles; ++t) {
            for (int64_t u = 0; u < n_taps[t]; ++u) {
              tap_panels[u] = strip_panels + tap[t * RS + u] * depth * NR;
            }
            const int64_t n_pixels = std::min(MR, pixels - pix0 - t * MR);
            scalar_t* dst[MR];
            for (int64_t i = 0; i < n_pixels; ++i) {
              dst[i] = out + out_pixel[t * MR + i] * out_channels + channel(g, j0);
            }
            pixel_tile::gathered_product(n_taps[t], depth, rows.data() + t * RS * MR,
                                         tap_panels.data(), init.data() + (g * strips + strip) * NR,
                                         direct ? reinterpret_cast<acc_t* const*>(dst) : nullptr,
                                         n_pixels, tile);
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

}  // namespace

void general_fprop_nhwc(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                        const at::Tensor& bias, const at::Tensor& output) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "general_fprop_nhwc", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto panels =
            pack_panels<acc_t>(p, weight.const_data_ptr<scalar_t>(), /*transposed=*/false);
        correlate(p, ForwardFrame{p}, input.const_data_ptr<scalar_t>(), p.C, p.c_per_group(),
                  panels, p.k_per_group(),
                  bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
                  [&p](int64_t g, int64_t k) { return p.output_channel(g, k); },
                  p.output_channel_step(), p.K, output.mutable_data_ptr<scalar_t>());
      });
}

void general_dgrad_nhwc(const ConvParams& p, const at::Tensor& grad_output,
                        const at::Tensor& weight, const at::Tensor& bias,
                        const at::Tensor& grad_input) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad_output.scalar_type(), "general_dgrad_nhwc", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto panels =
            pack_panels<acc_t>(p, weight.const_data_ptr<scalar_t>(), /*transposed=*/true);
        const int64_t Cg = p.c_per_group();
        correlate(p, BackwardFrame{p}, grad_output.const_data_ptr<scalar_t>(), p.K,
                  p.k_per_group(), panels, Cg,
                  bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
                  [Cg](int64_t g, int64_t c) { return g * Cg + c; }, 1, p.C,
                  grad_input.mutable_data_ptr<scalar_t>());
      });
}

}  // namespace convkernels::cpu
