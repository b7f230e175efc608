// PixelTile: the output pixels of one block tile of the TMA implicit GEMM (tma_conv_kernel.cuh), a
// box of q x p x n pixels (columns, rows, images) rather than a run of consecutive GEMM rows: the
// tensor memory accelerator's tiled mode copies a box, and a box of the input at one filter tap,
// its element strides the convolution's strides, holds exactly the pixels those outputs read, with
// the padding filled by the copy. Its rows land in the stage in the box's order (q fastest), so
// GEMM row i of the tile is pixel (q0 + i % q, p0 + i / q % p, n0 + i / (q p)).
//
// Where P, Q or N are no multiple of the box, the last boxes hold pixels past the output (their
// rows are multiplied, never stored). choose_pixel_tile picks the box with the fewest multiplied
// rows in all.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <tuple>

#include <c10/macros/Macros.h>

#include "problem.cuh"

namespace convkernels::cuda::nhwc_igemm {

struct PixelTile {
  int q, p, n;  // the box's extent in output columns, rows and images

  C10_HOST_DEVICE int rows() const { return q * p * n; }
};

// One tile's box: its first output pixel and extent, and where each of its rows is stored.
struct PixelBox {
  int q0, p0;
  int64_t n0;
  PixelTile extent;

  // The output pixel (p.output_pixel's) of the tile's GEMM row `row`, or -1 where the row lies
  // past the output or the box.
  C10_HOST_DEVICE int64_t output_pixel(const NhwcConvProblem& p, int row) const {
    const int q = row % extent.q, h = row / extent.q % extent.p, n = row / (extent.q * extent.p);
    if (n >= extent.n || q0 + q >= p.Q || p0 + h >= p.P || n0 + n >= p.N) return -1;
    return p.output_pixel(((n0 + n) * p.P + p0 + h) * p.Q + q0 + q);
  }
};

// The box of at most kRows pixels whose tiles cover the output in the fewest tiles (each costs
// kRows multiplied rows, full or not); among those, the one whose copies at all the filter's taps
// span the fewest input pixels (compact boxes: the taps' copies overlap most, in L2), then the
// one of fewest pixels (fewest bytes copied a tap), then the widest. A box dimension spans its
// extent times the stride in input pixels, which a tensor copy's box (at most 256 elements a
// dimension) must hold.
template <int kRows>
PixelTile choose_pixel_tile(const NhwcConvProblem& p) {
  const auto tiles = [](int64_t n, int64_t tile) { return (n + tile - 1) / tile; };
  const auto span = [](int64_t extent, int64_t stride, int64_t taps, int64_t dil) {
    return (extent - 1) * stride + (taps - 1) * dil + 1;
  };
  PixelTile best{1, 1, 1};
  std::tuple<int64_t, int64_t, int, int> best_cost{std::numeric_limits<int64_t>::max(), 0, 0, 0};
  for (int q = 1; q <= kRows && q * p.stride_w <= 256; ++q) {
    for (int h = 1; q * h <= kRows && h * p.stride_h <= 256; ++h) {
      const PixelTile tile{q, h, static_cast<int>(std::min<int64_t>(kRows / (q * h), p.N))};
      const int64_t footprint =
          span(q, p.stride_w, p.S, p.dil_w) * span(h, p.stride_h, p.R, p.dil_h) * tile.n;
      const std::tuple<int64_t, int64_t, int, int> cost{tiles(p.Q, q) * tiles(p.P, h) * tiles(p.N, tile.n),
                                                        footprint, tile.rows(), -q};
      if (cost < best_cost) {
        best = tile;
        best_cost = cost;
      }
    }
  }
  return best;
}

}  // namespace convkernels::cuda::nhwc_igemm
