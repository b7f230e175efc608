// The register-blocked matrix product behind the pointwise (1x1) kernels.
//
// Per image and group, a pointwise convolution is a matrix product over channels: fprop is
// y = W x, dgrad is dx = W^T dy, wgrad is dW = sum over images of dy x^T. All three run the same
// micro-kernel: an MR x NR tile of acc_t, kept in registers while it takes one rank-1 update per
// step of the inner ("depth") dimension from two packed panels,
//   A panel: depth x MR   (MR rows of the left factor, depth-major, zero-padded to MR rows)
//   B panel: depth x NR   (NR columns of the right factor, depth-major, zero-padded to NR),
// so the kernel needs no bounds checks and its inner loop is MR broadcasts times NR/lane FMAs.
// NR is two of the widest vectors of acc_t and MR is 6: 12 accumulator registers, two for the B
// row and one broadcast, inside AVX2's 16 (with AVX-512 the zmm tile is twice as wide, which
// halves the loads and broadcasts per FMA). Packing also converts half types to acc_t once.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "../conv_params.h"
#include "simd_vec.h"

namespace convkernels::cpu::pointwise {

template <typename acc_t>
struct Tile {
  using V = Vec<acc_t, kWideVectorBytes>;
  static constexpr int64_t rows = 6;                             // MR
  static constexpr int64_t vecs = 2;                             // vectors per tile row
  static constexpr int64_t cols = vecs * V::lanes;               // NR
  static constexpr int64_t size = rows * cols;
};

// c (MR x NR, row-major) += sum over d < depth of a[d, :] (outer) b[d, :].
template <typename acc_t>
inline void tile_product(int64_t depth, const acc_t* __restrict a, const acc_t* __restrict b,
                         acc_t* __restrict c) {
  using V = typename Tile<acc_t>::V;
  constexpr int64_t MR = Tile<acc_t>::rows, NV = Tile<acc_t>::vecs, NR = Tile<acc_t>::cols;
  typename V::type acc[MR][NV];
  for (int64_t i = 0; i < MR; ++i) {
    for (int64_t v = 0; v < NV; ++v) acc[i][v] = V::load(c + i * NR + v * V::lanes);
  }
  for (int64_t d = 0; d < depth; ++d) {
    typename V::type bd[NV];
    for (int64_t v = 0; v < NV; ++v) bd[v] = V::load(b + d * NR + v * V::lanes);
    for (int64_t i = 0; i < MR; ++i) {
      const acc_t ai = a[d * MR + i];
      for (int64_t v = 0; v < NV; ++v) acc[i][v] += ai * bd[v];
    }
  }
  for (int64_t i = 0; i < MR; ++i) {
    for (int64_t v = 0; v < NV; ++v) V::store(c + i * NR + v * V::lanes, acc[i][v]);
  }
}

// Packs a depth x width panel: dst[d * width + i] = src[i * count_stride + d * depth_stride] for
// i < count, and 0 for count <= i < width (the padding the micro-kernel multiplies harmlessly).
template <int64_t width, typename acc_t, typename scalar_t>
void pack_panel(const scalar_t* src, int64_t count, int64_t depth, int64_t count_stride,
                int64_t depth_stride, acc_t* dst) {
  if (depth_stride == 1 && count_stride != 1) {
    // A transpose (the weights of fprop): in blocks of depth, so that both the source rows and the
    // block of dst are read and written in cache lines rather than as `width` strided streams.
    constexpr int64_t kBlock = 16;
    for (int64_t d0 = 0; d0 < depth; d0 += kBlock) {
      const int64_t d1 = std::min(depth, d0 + kBlock);
      for (int64_t i = 0; i < count; ++i) {
        const scalar_t* s = src + i * count_stride;
        for (int64_t d = d0; d < d1; ++d) dst[d * width + i] = static_cast<acc_t>(s[d]);
      }
    }
    for (int64_t d = 0; d < depth; ++d) {
      std::fill(dst + d * width + count, dst + (d + 1) * width, acc_t(0));
    }
    return;
  }
  for (int64_t d = 0; d < depth; ++d) {
    const scalar_t* s = src + d * depth_stride;
    acc_t* t = dst + d * width;
    for (int64_t i = 0; i < count; ++i) t[i] = static_cast<acc_t>(s[i * count_stride]);
    std::fill(t + count, t + width, acc_t(0));
  }
}

// weight_times_images for planes of fewer than NR pixels (the 1x1 or 7x7 maps at the end of a
// classifier), where a tile of NR pixel columns would be mostly padding and (image, group, column
// block) makes too few tasks. There it computes the transposed product, out^T = in^T A^T: the
// tile's rows are MR pixels, taken across images, and its columns NR rows of A (output channels).
// A task owns one block of NR rows of one group: it packs that slice of the weights once, then
// sweeps every pixel tile over it.
template <typename scalar_t, typename OutputChannel>
void few_pixels_times_weight(const ConvParams& p, int64_t rows, int64_t depth, const scalar_t* w,
                             int64_t w_row_stride, int64_t w_depth_stride, const scalar_t* in,
                             const scalar_t* bias, OutputChannel channel, scalar_t* out) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t MR = Tile<acc_t>::rows, NR = Tile<acc_t>::cols;
  const int64_t HW = p.H * p.W, G = p.groups, pixels = p.N * HW;
  const int64_t strips = (rows + NR - 1) / NR;

  at::parallel_for(0, G * strips, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> w_packed(depth * NR);
    std::vector<acc_t> in_packed(depth * MR);
    acc_t tile[MR * NR];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task / strips;
      const int64_t j0 = (task % strips) * NR;  // the strip's first row of A
      const int64_t cols = std::min(NR, rows - j0);
      pack_panel<NR>(w + g * rows * depth + j0 * w_row_stride, cols, depth, w_row_stride,
                     w_depth_stride, w_packed.data());
      for (int64_t pix0 = 0; pix0 < pixels; pix0 += MR) {
        const int64_t tile_pixels = std::min(MR, pixels - pix0);
        const scalar_t* pixel[MR];  // channel 0 of the group at each pixel of the tile
        for (int64_t i = 0; i < tile_pixels; ++i) {
          const int64_t n = (pix0 + i) / HW, hw = (pix0 + i) % HW;
          pixel[i] = in + (n * G + g) * depth * HW + hw;
        }
        for (int64_t d = 0; d < depth; ++d) {
          for (int64_t i = 0; i < MR; ++i) {
            in_packed[d * MR + i] =
                i < tile_pixels ? static_cast<acc_t>(pixel[i][d * HW]) : acc_t(0);
          }
        }
        for (int64_t j = 0; j < NR; ++j) {
          tile[j] = bias && j < cols ? static_cast<acc_t>(bias[g * rows + j0 + j]) : acc_t(0);
        }
        for (int64_t i = 1; i < MR; ++i) std::copy(tile, tile + NR, tile + i * NR);
        tile_product(depth, in_packed.data(), w_packed.data(), tile);
        for (int64_t i = 0; i < tile_pixels; ++i) {
          const int64_t n = (pix0 + i) / HW, hw = (pix0 + i) % HW;
          scalar_t* image = out + n * G * rows * HW + hw;
          for (int64_t j = 0; j < cols; ++j) {
            image[channel(g, j0 + j) * HW] = static_cast<scalar_t>(tile[i * NR + j]);
          }
        }
      }
    }
  });
}

// The shared body of fprop and dgrad: for every image n and group g,
//   out[n, channel(g, i), :] = bias[g*rows + i] + sum over d < depth of A_g[i, d] * in[n, g*depth + d, :]
// over the H*W pixels, where A_g[i, d] = w[g*rows*depth + i*w_row_stride + d*w_depth_stride]
// (fprop: A = W, rows = K/g, channel = ConvParams::output_channel; dgrad: A = W^T, rows = C/g,
// channel(g, i) = g*rows + i). Each task owns a block of pixel columns of one (image, group): it
// packs that block of `in` once and sweeps every A row block over it.
template <typename scalar_t, typename OutputChannel>
void weight_times_images(const ConvParams& p, int64_t rows, int64_t depth, const scalar_t* w,
                         int64_t w_row_stride, int64_t w_depth_stride, const scalar_t* in,
                         const scalar_t* bias, OutputChannel channel, scalar_t* out) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t MR = Tile<acc_t>::rows, NR = Tile<acc_t>::cols;
  // Keep a task's packed block of `in` within about 128 KiB, so it stays in L2 while every row
  // block of A sweeps it.
  constexpr int64_t kBlockBytes = 128 * 1024;
  const int64_t HW = p.H * p.W, G = p.groups;
  if (HW < NR) {
    return few_pixels_times_weight(p, rows, depth, w, w_row_stride, w_depth_stride, in, bias,
                                   channel, out);
  }
  const int64_t row_blocks = (rows + MR - 1) / MR;
  const int64_t max_strips = std::max<int64_t>(1, kBlockBytes / (depth * NR * int64_t(sizeof(acc_t))));
  const int64_t strips_per_block = std::min(max_strips, (HW + NR - 1) / NR);
  const int64_t block_cols = strips_per_block * NR;
  const int64_t col_blocks = (HW + block_cols - 1) / block_cols;

  std::vector<acc_t> a_packed(G * row_blocks * depth * MR);
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t rb = 0; rb < row_blocks; ++rb) {
      pack_panel<MR>(w + g * rows * depth + rb * MR * w_row_stride,
                     std::min(MR, rows - rb * MR), depth, w_row_stride, w_depth_stride,
                     a_packed.data() + (g * row_blocks + rb) * depth * MR);
    }
  }

  at::parallel_for(0, p.N * G * col_blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> b_packed(strips_per_block * depth * NR);
    acc_t tile[MR * NR];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t ng = task / col_blocks;  // image * G + group
      const int64_t g = ng % G;
      const int64_t col0 = (task % col_blocks) * block_cols;
      const int64_t strips = (std::min(block_cols, HW - col0) + NR - 1) / NR;
      const scalar_t* in_block = in + ng * depth * HW + col0;
      for (int64_t st = 0; st < strips; ++st) {
        pack_panel<NR>(in_block + st * NR, std::min(NR, HW - col0 - st * NR), depth, 1, HW,
                       b_packed.data() + st * depth * NR);
      }
      for (int64_t st = 0; st < strips; ++st) {
        const int64_t cols = std::min(NR, HW - col0 - st * NR);
        for (int64_t rb = 0; rb < row_blocks; ++rb) {
          const int64_t row0 = g * rows + rb * MR;  // the tile's first row, unshuffled (bias index)
          const int64_t tile_rows = std::min(MR, rows - rb * MR);
          for (int64_t i = 0; i < MR; ++i) {
            const acc_t b = bias && i < tile_rows ? static_cast<acc_t>(bias[row0 + i]) : acc_t(0);
            std::fill(tile + i * NR, tile + (i + 1) * NR, b);
          }
          tile_product(depth, a_packed.data() + (g * row_blocks + rb) * depth * MR,
                       b_packed.data() + st * depth * NR, tile);
          scalar_t* image = out + (ng / G) * G * rows * HW + col0 + st * NR;
          for (int64_t i = 0; i < tile_rows; ++i) {
            scalar_t* dst = image + channel(g, rb * MR + i) * HW;
            for (int64_t j = 0; j < cols; ++j) dst[j] = static_cast<scalar_t>(tile[i * NR + j]);
          }
        }
      }
    }
  });
}

}  // namespace convkernels::cpu::pointwise
