// The weight gradient as a matrix product over output positions: for every group g,
//   dw_g[a, b] = sum over d < depth of A_g[a, d] * B_g[b, d],
// where the rows of A and B are dy channels and what each filter tap of an input channel reads
// (either way round), indexed by the same output positions d = (image, output pixel). Callers
// stage chunks of rows of both (pointwise_wgrad: the channels as they are; wgrad_im2col.cpp: dy,
// and the taps' input gathered as im2col would).
//
// A register tile holds AV vectors of A rows (lanes along A's rows) x TB rows of B: per position
// it loads AV vectors of A transposed and broadcasts TB elements of B (2 x 12 or 1 x 24
// accumulators with AVX-512, half that with AVX2). Only A is transposed, once per chunk: the B
// rows are read as staged, so a task with many B rows per A row pays little for it, and no lanes
// reduce at the end. A task owns a block of dw_g for the whole reduction and every sum runs over
// the positions in order, so the result does not depend on the thread count or the blocking.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <ATen/Parallel.h>

#include "index_math.h"
#include "simd_vec.h"

namespace convkernels::cpu::wgrad {

// Largest block of A rows (in vectors) and of B rows of a task, and the bytes of one staged chunk
// (A, A transposed and B), which stays in L2 while the tiles sweep it.
constexpr int64_t kMaxVectorsA = 16, kMaxBlockB = 384;
constexpr int64_t kChunkBytes = 512 * 1024;

// B rows per register tile with two vectors of A rows (twice that with one): 24 accumulators of
// AVX-512's 32 registers, or 12 of AVX2's 16.
constexpr int64_t kTileB = kWideVectorBytes == 64 ? 12 : 6;

// How B is staged: rows (B[j][d] at b[j * pitch + d]) or columns (at b[d * pitch + j]).
enum class Layout { kRows, kColumns };

// sums[t][v * lanes + lane] += the sum over d < depth of at[d][v * lanes + lane] * B[t][d], for
// t < TB, v < AV (at rows a_pitch apart, B in `layout` with b_pitch, sums rows s_pitch apart).
template <int64_t AV, int64_t TB, Layout layout, typename acc_t>
void tile_product(int64_t depth, const acc_t* __restrict at, int64_t a_pitch,
                  const acc_t* __restrict b, int64_t b_pitch, acc_t* __restrict sums,
                  int64_t s_pitch) {
  using V = Vec<acc_t, kWideVectorBytes>;
  constexpr int64_t L = V::lanes;
  typename V::type acc[TB][AV];
  for (int64_t t = 0; t < TB; ++t) {
    for (int64_t v = 0; v < AV; ++v) acc[t][v] = V::load(sums + t * s_pitch + v * L);
  }
  for (int64_t d = 0; d < depth; ++d) {
    typename V::type av[AV];
#pragma GCC unroll 4
    for (int64_t v = 0; v < AV; ++v) av[v] = V::load(at + d * a_pitch + v * L);
#pragma GCC unroll 32
    for (int64_t t = 0; t < TB; ++t) {
      const acc_t bt = layout == Layout::kRows ? b[t * b_pitch + d] : b[d * b_pitch + t];
#pragma GCC unroll 4
      for (int64_t v = 0; v < AV; ++v) acc[t][v] += av[v] * bt;
    }
  }
  for (int64_t t = 0; t < TB; ++t) {
    for (int64_t v = 0; v < AV; ++v) V::store(sums + t * s_pitch + v * L, acc[t][v]);
  }
}

// Calls f(std::integral_constant<int64_t, TB>) with the largest TB in {24, 12, 6, 4, 2, 1} that
// is at most n and at most `widest`.
template <typename F>
void with_tile_width(int64_t n, int64_t widest, F&& f) {
  const int64_t m = std::min(n, widest);
  if (m >= 24) return f(std::integral_constant<int64_t, 24>{});
  if (m >= 12) return f(std::integral_constant<int64_t, 12>{});
  if (m >= 6) return f(std::integral_constant<int64_t, 6>{});
  if (m >= 4) return f(std::integral_constant<int64_t, 4>{});
  if (m >= 2) return f(std::integral_constant<int64_t, 2>{});
  f(std::integral_constant<int64_t, 1>{});
}

// Stages positions [d0, d0 + len) of `rows` consecutive channels of an N x channels x plane
// tensor, position d being element d % plane of image d / plane:
// dst[i * pitch + t] = src[(d0 + t) / plane * image_stride + i * plane + (d0 + t) % plane].
template <typename scalar_t, typename acc_t>
void stage_channels(const scalar_t* src, int64_t image_stride, int64_t plane, int64_t rows,
                    int64_t d0, int64_t len, int64_t pitch, acc_t* dst) {
  for (int64_t i = 0; i < rows; ++i) {
    acc_t* row = dst + i * pitch;
    for (int64_t t = 0; t < len;) {
      const int64_t n = (d0 + t) / plane, e = (d0 + t) % plane;
      const int64_t run = std::min(len - t, plane - e);
      const scalar_t* s = src + n * image_stride + i * plane + e;
      for (int64_t u = 0; u < run; ++u) row[t + u] = static_cast<acc_t>(s[u]);
      t += run;
    }
  }
}

// For every group g < groups, a < rows_a, b < rows_b: store(g, a, b, dw_g[a, b]) with the sums
// above. stage_a(g, a0, count, d0, len, pitch, dst) writes positions [d0, d0 + len) of A_g's rows
// [a0, a0 + count) to dst (row i at dst + i * pitch, len elements), or with a_layout kColumns
// straight in the transposed form the tiles read (element (i, t) at dst[t * pitch + i], zero for
// count <= i < pitch): channels_last dy has it already. stage_b likewise for B_g, and
// also returns in nonzero[i] a range of positions (relative to d0) outside which row i is zero:
// the tiles skip the positions where all their B rows are (a tap that reads only padding there).
// With Layout::kColumns, stage_b writes B's rows as columns instead: element (i, t) at
// dst[t * pitch_b + i], with pitch_b = round_up(count, lanes) + lanes.
template <typename acc_t, Layout layout = Layout::kRows, Layout a_layout = Layout::kRows,
          typename StageA, typename StageB, typename Store>
void weight_gradient(int64_t groups, int64_t rows_a, int64_t rows_b, int64_t depth,
                     const StageA& stage_a, const StageB& stage_b, const Store& store) {
  constexpr int64_t L = Vec<acc_t, kWideVectorBytes>::lanes;
  // Blocks of A and B rows per task, as even as whole vectors (A) and tiles (B) allow. While the
  // tasks are few, their number is made a multiple of the threads', so that every thread gets the
  // same work: more blocks of B rows (each re-transposes its A rows), else of A rows.
  int64_t n_a = ceil_div(rows_a, kMaxVectorsA * L), n_b = ceil_div(rows_b, kMaxBlockB);
  const int64_t threads = at::get_num_threads();
  if (groups * n_a * n_b < 4 * threads) {
    while ((groups * n_a * n_b) % threads != 0) {
      if (n_b < ceil_div(rows_b, kTileB)) {
        ++n_b;
      } else if (n_a < ceil_div(rows_a, L)) {
        ++n_a;
      } else {
        break;
      }
    }
  }
  const int64_t block_a = round_up(ceil_div(rows_a, n_a), L);
  const int64_t block_b = std::min(rows_b, round_up(ceil_div(rows_b, n_b), kTileB));
  const int64_t blocks_a = ceil_div(rows_a, block_a), blocks_b = ceil_div(rows_b, block_b);
  const int64_t chunk = std::clamp<int64_t>(
      kChunkBytes / ((2 * block_a + block_b) * int64_t(sizeof(acc_t))) / L * L, L,
      round_up(depth, L));

  at::parallel_for(0, groups * blocks_a * blocks_b, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> a_rows(block_a * (chunk + L)), a_columns(chunk * block_a);
    // B: block_b rows of up to chunk + L, or up to chunk columns of round_up(block_b, L) + L.
    std::vector<acc_t> b_rows((round_up(block_b, L) + L) * (chunk + L)), sums(block_a * block_b);
    std::vector<Range> nonzero(block_b);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task / (blocks_a * blocks_b);
      const int64_t a0 = task / blocks_b % blocks_a * block_a, b0 = task % blocks_b * block_b;
      const int64_t an = std::min(block_a, rows_a - a0), bn = std::min(block_b, rows_b - b0);
      const int64_t a_pitch = round_up(an, L);  // A transposed, zero-padded to whole vectors
      // The sum of A row i and B row j is at j * a_pitch + i.
      std::fill(sums.begin(), sums.end(), acc_t(0));
      for (int64_t d0 = 0; d0 < depth; d0 += chunk) {
        // Rows a vector longer than needed: a power of two would map the rows a tile broadcasts
        // from onto a few sets of the L1 cache.
        const int64_t len = std::min(chunk, depth - d0), pitch = round_up(len, L) + L;
        const int64_t b_pitch = layout == Layout::kRows ? pitch : round_up(bn, L) + L;
        stage_b(g, b0, bn, d0, len, b_pitch, b_rows.data(), nonzero.data());
        if constexpr (a_layout == Layout::kColumns) {
          stage_a(g, a0, an, d0, len, a_pitch, a_columns.data());
        } else {
          stage_a(g, a0, an, d0, len, pitch, a_rows.data());
          // A transposed, a vector of columns at a time, each a gather from `lanes` rows.
          std::fill(a_rows.data() + an * pitch, a_rows.data() + a_pitch * pitch, acc_t(0));
          for (int64_t i = 0; i < a_pitch; i += L) {
            const acc_t* src = a_rows.data() + i * pitch;
            for (int64_t d = 0; d < len; ++d) {
              acc_t* dst = a_columns.data() + d * a_pitch + i;
#pragma omp simd
              for (int64_t l = 0; l < L; ++l) dst[l] = src[l * pitch + d];
            }
          }
        }
        // Tiles of 2 x kTileB vectors, or 1 x 2 kTileB where the A rows are one vector wide.
        const int64_t widest = a_pitch >= 2 * L ? kTileB : 2 * kTileB;
        for (int64_t j = 0; j < bn;) {
          with_tile_width(bn - j, widest, [&](auto width) {
            constexpr int64_t TB = decltype(width)::value;
            Range run = nonzero[j];  // where some row of the tile is nonzero
            for (int64_t t = 1; t < TB; ++t) {
              run.begin = std::min(run.begin, nonzero[j + t].begin);
              run.end = std::max(run.end, nonzero[j + t].end);
            }
            for (int64_t i = 0; i < a_pitch && run.begin < run.end; i += 2 * L) {
              const acc_t* at = a_columns.data() + run.begin * a_pitch + i;
              const acc_t* b = b_rows.data() + (layout == Layout::kRows
                                                     ? j * b_pitch + run.begin
                                                     : run.begin * b_pitch + j);
              acc_t* s = sums.data() + j * a_pitch + i;
              const int64_t n = run.end - run.begin;
              if constexpr (TB <= kTileB) {
                if (a_pitch - i >= 2 * L) {
                  tile_product<2, TB, layout>(n, at, a_pitch, b, b_pitch, s, a_pitch);
                  continue;
                }
              }
              tile_product<1, TB, layout>(n, at, a_pitch, b, b_pitch, s, a_pitch);
            }
            j += TB;
          });
        }
      }
      // In blocks of B rows, so that both the sums read and the stores stay within a few cache
      // lines.
      constexpr int64_t kBlock = 16;
      for (int64_t j0 = 0; j0 < bn; j0 += kBlock) {
        for (int64_t i = 0; i < an; ++i) {
          for (int64_t j = j0; j < std::min(bn, j0 + kBlock); ++j) {
            store(g, a0 + i, b0 + j, sums[j * a_pitch + i]);
          }
        }
      }
    }
  });
}

}  // namespace convkernels::cpu::wgrad
