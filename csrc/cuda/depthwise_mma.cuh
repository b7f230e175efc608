// Large depthwise filters on tensor cores (float16 and bfloat16, NCHW, unit stride): the forward,
// and the input gradient at unit stride as the forward correlation of the flipped filter.
//
// Along a row a depthwise convolution is a 1-D correlation, y[ow] += sum_s w[r][s] x[ow + s*dil_w],
// a product with a banded (Toeplitz) matrix: for 16 outputs ow0 + m and 16 staged columns
// ow0 + 16q + k,
//   A_q[m][k] = w[r][s] where 16q + k - m == s * dil_w (0 where no tap lands),
// the same 16x16 matrix for every ow0. With 8 output rows as N, one mma.m16n8k16 computes
//   D[m][n] += sum_k A_q[m][k] * patch[oh0 + n + r * dil_h][ow0 + 16q + k]
// and kQ = ceil((15 + span) / 16) blocks q cover a filter row of span (S-1)*dil_w + 1: 16 x 16kQ
// multiply-adds for 16 x S useful ones (31x31: 31 of 48), at tensor-core rates.
//
// A block computes a tile of one output plane: up to four warps of 16 rows (two n-tiles) by
// 16 * kMTiles columns (kMTiles m-tiles: 4, or 1 or 2 for narrow planes), as many warps as the
// plane's height asks for, so that small planes (RepLKNet's 14x14) do not leave most of a 64x64
// tile empty. Per source plane (the forward has one; the input gradient one per channel of the
// multiplier) it stages the patch with its halo in shared memory as T, and each filter row
// expanded into its Toeplitz diagonal: e[d] = A_q[m][k] for d = 16q + k - m, in two copies shifted
// by one value, so that a lane's pair (e[d], e[d+1]) is one 32-bit word whatever the parity of d.
// For each filter row r a warp builds its kQ A fragments once (3 words each: A[m+8][k+8] ==
// A[m][k]) and loads each B fragment (8 patch rows x 16 columns, one ldmatrix.x2) once for the kQ
// m-tiles it serves. The float accumulators leave through shared memory as rows of 8-byte vectors.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <type_traits>

#include <c10/core/ScalarType.h>

#include "../simt/ldmatrix.h"
#include "depthwise_staging.cuh"
#include "depthwise_tile.cuh"
#include "launch.cuh"
#include "mma.cuh"

namespace convkernels::cuda {

namespace depthwise::mma {

constexpr int kMaxWarps = 4;
constexpr int kNTiles = 2;     // a warp's 8-row tiles
constexpr int kWarpRows = 8 * kNTiles;
constexpr int kMaxQ = 3;       // filter spans up to 33 columns
// The epilogue's rows of floats: 16 * kMTiles + 4 puts rows 2 apart 32 banks apart.
constexpr int output_pitch(int m_tiles) { return 16 * m_tiles + 4; }

// Where the two views of a depthwise convolution that the kernel computes differ.
struct Plan {
  int64_t out_planes, out_h, out_w;  // the planes computed: y (forward) or dx (input gradient)
  int64_t in_h, in_w;                // the source planes: x or dy
  int64_t pad_h, pad_w;              // of the correlation: the forward's, or span - 1 - pad flipped
  int blocks_per_row;                // kQ: Toeplitz blocks a filter row spans
  int m_tiles, warps;                // a warp's 16-column tiles (kMTiles), a block's warps
  int tiles_h, tiles_w, tile_rows;   // tile_rows = kWarpRows * warps
  int patch_rows, patch_pitch;  // staged source rows and their pitch, in values of T
  int copy_words;               // one copy of an expanded filter row, in 32-bit words
  int patch_offset;             // the patch, in values of T from the start of shared memory
  int flag_word;                // set where a block's source or filter holds an Inf or NaN
  std::size_t shared_bytes;
};

// Values of e before index 0 of its copy: e[d] sits at d + kLead (even copy) or d + kLead + 1.
constexpr int kLead = 16;

// Staged columns of a block: its kMTiles column tiles and the kQ - 1 blocks past the last.
constexpr int staged_columns(int m_tiles, int q) { return 16 * (m_tiles + q - 1); }

// Where copy `copy` of expanded filter row r starts, in values of T from the filter's start.
__device__ __forceinline__ int expanded_row(const Plan& plan, int r, int copy) {
  return (r * 2 + copy) * 2 * plan.copy_words;
}

// Whether either 16-bit value of `pair` (float16 or bfloat16 bits) is an Inf or a NaN.
template <typename T>
__device__ __forceinline__ bool holds_non_finite(uint32_t pair) {
  constexpr uint32_t kExponent = std::is_same_v<T, c10::Half> ? 0x7C00u : 0x7F80u;
  return (pair & kExponent) == kExponent || (pair >> 16 & kExponent) == kExponent;
}

}  // namespace depthwise::mma

// acc[mt][nt][i] += sum over the taps that meet the source plane of tap * source, in float: the
// source's contribution where its block holds an Inf or a NaN (a lane's accumulator (mt, nt, i)
// is the output of tile row 16 warp + 8 nt + 2t + i % 2, column 16 mt + g + 8 (i / 2)).
template <int kMTiles, typename T>
__device__ void accumulate_exactly(float (&acc)[kMTiles][depthwise::mma::kNTiles][4],
                                   const depthwise::mma::Plan& plan, const T* filter, const T* patch,
                                   int R, int S, int dil_h, int dil_w, int64_t oh0, int64_t ow0) {
  using namespace depthwise::mma;
  const int g = threadIdx.x / 4, t = threadIdx.x % 4;
  int64_t fmas = 0;
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int row = threadIdx.y * kWarpRows + nt * 8 + 2 * t + i % 2, col = mt * 16 + g + i / 2 * 8;
        for (int r = 0; r < R; ++r) {
          const int64_t h = oh0 - plan.pad_h + row + r * dil_h;
          if (h < 0 || h >= plan.in_h) continue;
          for (int s = 0; s < S; ++s) {
            const int64_t w = ow0 - plan.pad_w + col + s * dil_w;
            if (w < 0 || w >= plan.in_w) continue;
            const T tap = simt::ld_shared(filter + expanded_row(plan, r, 0) + s * dil_w + kLead);
            const T value = simt::ld_shared(patch + (row + r * dil_h) * plan.patch_pitch + col + s * dil_w);
            acc[mt][nt][i] += static_cast<float>(tap) * static_cast<float>(value);
            ++fmas;
          }
        }
      }
    }
  }
  simt::note_fma<float>(fmas);
}

template <typename T, int kQ, int kMTiles, bool kInputGradient>
__global__ void depthwise_mma_kernel(Grid first, ConvParams p, depthwise::mma::Plan plan,
                                     const T* __restrict__ src, const T* __restrict__ w,
                                     const T* __restrict__ bias, T* __restrict__ dst) {
  using namespace depthwise::mma;
  SIMT_DYNAMIC_SHARED(uint32_t, shared);
  T* const filter = reinterpret_cast<T*>(shared);
  T* const patch = filter + plan.patch_offset;
  float* const output = reinterpret_cast<float*>(patch);  // the epilogue reuses the patch

  const int R = static_cast<int>(p.R), S = static_cast<int>(p.S);
  const int dil_h = static_cast<int>(p.dil_h), dil_w = static_cast<int>(p.dil_w);
  const int64_t block = block_index(first).x;
  const int64_t tiles = int64_t{plan.tiles_h} * plan.tiles_w;
  const int64_t plane = block / tiles;
  constexpr int kTileCols = 16 * kMTiles, kOutputPitch = output_pitch(kMTiles);
  constexpr int kStagedColumns = staged_columns(kMTiles, kQ);
  const int64_t oh0 = block % tiles / plan.tiles_w * plan.tile_rows;
  const int64_t ow0 = block % tiles % plan.tiles_w * kTileCols;
  const int thread = threadIdx.x + 32 * threadIdx.y, threads = 32 * blockDim.y, warp = threadIdx.y;
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  const bool active = plane < plan.out_planes;

  // The forward's plane (n, k) reads x[n, k / M] with filter k; the input gradient's (n, c) reads
  // dy[n, c * M + m] with filter c * M + m for each m < M.
  const int64_t M = p.K / p.C;
  const int64_t n = kInputGradient ? plane / p.C : plane / p.K;
  const int64_t channel = kInputGradient ? plane % p.C : plane % p.K;
  const int64_t sources = kInputGradient ? M : 1;

  float acc[kMTiles][kNTiles][4];
  const float b = active && bias != nullptr ? static_cast<float>(simt::ld_global(bias + channel)) : 0.0f;
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = b;
    }
  }

  for (int64_t m = 0; m < sources; ++m) {
    const int64_t k = kInputGradient ? channel * M + m : channel;
    const int64_t source_plane = kInputGradient ? n * p.K + k : n * p.C + k / M;
    __syncthreads();  // the previous source's patch and filter are consumed
    // Expanded filter rows: copy c of row r holds e[d] at d + kLead + c, e[d] the tap s of row r
    // with s * dil_w == d (flipped for the input gradient), 0 where none is. Zeros first, then
    // each tap read once and placed in both copies, a warp a filter row (distinct banks).
    for (int i = thread; i < R * 2 * plan.copy_words; i += threads) simt::st_shared(shared + i, 0u);
    if (thread == 0) simt::st_shared(shared + plan.flag_word, 0u);
    __syncthreads();
    for (int r = warp; r < R; r += blockDim.y) {
      for (int s = lane; active && s < S; s += 32) {
        const T value = simt::ld_global(w + (k * R + r) * S + s);
        if (holds_non_finite<T>(value.x)) simt::st_shared(shared + plan.flag_word, 1u);
        const int er = kInputGradient ? R - 1 - r : r, es = kInputGradient ? S - 1 - s : s;
#pragma unroll
        for (int copy = 0; copy < 2; ++copy) {
          simt::st_shared(filter + expanded_row(plan, er, copy) + es * dil_w + kLead + copy, value);
        }
      }
    }
    depthwise::stage_tile(active ? src + source_plane * plan.in_h * plan.in_w : nullptr, plan.in_h,
                          plan.in_w, oh0 - plan.pad_h, ow0 - plan.pad_w, 1, plan.patch_pitch,
                          plan.patch_pitch, kStagedColumns, plan.patch_rows, thread, threads, patch);
    __syncthreads();
    // The Toeplitz blocks' zeros meet every staged value of a row: an Inf or NaN there would make
    // NaN (0 * Inf) of outputs that never read it, and an Inf tap NaN of outputs whose window
    // meets padding. A block that stages one computes this source exactly instead, tap by tap,
    // skipping the padding as torch's direct kernels do.
    // Consecutive lanes read consecutive words (no bank conflicts), skipping the rows' unused tails.
    const auto* const patch_words = reinterpret_cast<const uint32_t*>(patch);
    for (int i = thread; i < plan.patch_rows * plan.patch_pitch / 2; i += threads) {
      const bool used = i % (plan.patch_pitch / 2) < kStagedColumns / 2;
      if (used && holds_non_finite<T>(simt::ld_shared(patch_words + i))) simt::st_shared(shared + plan.flag_word, 1u);
    }
    __syncthreads();
    if (simt::ld_shared(shared + plan.flag_word) != 0) {
      accumulate_exactly<kMTiles>(acc, plan, filter, patch, R, S, dil_h, dil_w, oh0, ow0);
      continue;
    }

    for (int r = 0; r < R; ++r) {
      // A_q's registers: a0 = (e[d], e[d+1]) for d = 16q + 2t - g, a1 at d - 8 (row g + 8),
      // a2 at d + 8 (column 2t + 8), a3 == a0. Lane g reads the copy of its parity.
      const auto* const row_words = reinterpret_cast<const uint32_t*>(filter + expanded_row(plan, r, g % 2));
      uint32_t a[kQ][4];
#pragma unroll
      for (int q = 0; q < kQ; ++q) {
        const int word = (16 * q + 2 * t - g + kLead + g % 2) / 2;
        a[q][0] = simt::ld_shared(row_words + word);
        a[q][1] = simt::ld_shared(row_words + word - 4);
        a[q][2] = simt::ld_shared(row_words + word + 4);
        a[q][3] = a[q][0];
      }
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) {
        // Lanes 0-7 name rows 0-7 of the first 8 columns, lanes 8-15 those of the next 8.
        const T* const rows = patch + (warp * kWarpRows + nt * 8 + lane % 8 + r * dil_h) * plan.patch_pitch +
                              lane / 8 % 2 * 8;
#pragma unroll
        for (int c = 0; c < kMTiles + kQ - 1; ++c) {
          uint32_t bfrag[2];
          simt::ldmatrix<2>(bfrag, rows + 16 * c);
#pragma unroll
          for (int q = 0; q < kQ; ++q) {
            const int mt = c - q;  // the m-tile whose block q is column block c
            if (mt < 0 || mt >= kMTiles) continue;
            simt::mma_m16n8k16<mma_operand<T>>(acc[mt][nt], a[q], bfrag);
          }
        }
      }
    }
  }

  // D[m][n] of tile (mt, nt) is output row 8 nt + n, column 16 mt + m: a lane holds rows 2t and
  // 2t + 1 of columns g and g + 8.
  __syncthreads();  // the patch is consumed
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt) {
      const int row = warp * kWarpRows + nt * 8 + 2 * t, col = mt * 16 + g;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        simt::st_shared(output + (row + i % 2) * kOutputPitch + col + i / 2 * 8, acc[mt][nt][i]);
      }
    }
  }
  __syncthreads();
  // Each thread stores 4 adjacent outputs of a row at a time, a quarter-warp 32 of one row; of
  // 16-column rows a quarter-warp takes two, 4 rows apart (64 bytes apart in the banks).
  const int64_t out_channel = kInputGradient ? channel : p.output_channel(channel / M, channel % M);
  T* const out_plane = dst + (n * (kInputGradient ? p.C : p.K) + out_channel) * plan.out_h * plan.out_w;
  for (int i = thread; i < plan.tile_rows * kTileCols / 4; i += threads) {
    const int quarter = i / 8, j = i % 8;
    const int row = kMTiles == 1 ? quarter / 4 * 8 + quarter % 4 + j / 4 * 4 : i / (kTileCols / 4);
    const int col = i % (kTileCols / 4) * 4;
    const auto values = simt::ld_shared(reinterpret_cast<const depthwise::Vector<float, 4>*>(
        output + row * kOutputPitch + col));
    const int64_t oh = oh0 + row, ow = ow0 + col;
    const bool valid = active && oh < plan.out_h && ow < plan.out_w;
    depthwise::store_outputs(valid ? out_plane + oh * plan.out_w + ow : dst, 1, plan.out_w - ow, valid,
                             values.v);
  }
}

// The tensor-core kernel's plan for p where it applies: unit stride, filters of 7x7 and larger whose
// dilated rows span at most 16 * kMaxQ - 15 columns, enough of the work useful, and a patch of
// 16-bit values that fits in shared memory; nothing elsewhere.
template <bool kInputGradient>
std::optional<depthwise::mma::Plan> depthwise_mma_plan(const ConvParams& p) {
  using namespace depthwise::mma;
  constexpr std::size_t kValueSize = 2;  // float16, bfloat16
  const int64_t span_h = (p.R - 1) * p.dil_h + 1, span_w = (p.S - 1) * p.dil_w + 1;
  const int64_t q = depthwise::ceil_div(15 + span_w, 16);
  if (p.stride_h != 1 || p.stride_w != 1 || p.R < 7 || p.S < 7 || q > kMaxQ) return std::nullopt;
  Plan plan{};
  plan.blocks_per_row = static_cast<int>(q);
  plan.out_planes = kInputGradient ? p.N * p.C : p.N * p.K;
  plan.out_h = kInputGradient ? p.H : p.P;
  plan.out_w = kInputGradient ? p.W : p.Q;
  plan.in_h = kInputGradient ? p.P : p.H;
  plan.in_w = kInputGradient ? p.Q : p.W;
  plan.pad_h = kInputGradient ? span_h - 1 - p.pad_h : p.pad_h;
  plan.pad_w = kInputGradient ? span_w - 1 - p.pad_w : p.pad_w;
  plan.m_tiles = plan.out_w <= 16 ? 1 : plan.out_w <= 32 ? 2 : 4;
  plan.warps = static_cast<int>(std::min<int64_t>(kMaxWarps, depthwise::ceil_div(plan.out_h, kWarpRows)));
  plan.tile_rows = kWarpRows * plan.warps;
  plan.tiles_h = static_cast<int>(depthwise::ceil_div(plan.out_h, plan.tile_rows));
  plan.tiles_w = static_cast<int>(depthwise::ceil_div(plan.out_w, 16 * plan.m_tiles));
  plan.patch_rows = static_cast<int>(plan.tile_rows + span_h - 1);
  // The share of the tensor-core work that is useful: the plane's part of its tiles times a
  // filter row's taps of the 16 * q columns a Toeplitz block row holds. At an eighth or less
  // (13x13 on 7x7 planes) the CUDA-core kernels issue no more than the model's mma floor.
  const double useful = double(plan.out_h * plan.out_w) /
                        double(int64_t{plan.tiles_h} * plan.tile_rows * plan.tiles_w * 16 * plan.m_tiles) *
                        double(p.S) / double(16 * q);
  if (useful <= 0.125) return std::nullopt;
  // Rows an odd number of 16-byte units long: ldmatrix's 8 rows meet 8 distinct bank groups.
  plan.patch_pitch = staged_columns(plan.m_tiles, static_cast<int>(q)) + 8;
  // Copies 16 banks apart: a warp's words of the two copies never share a bank.
  const int words = static_cast<int>(8 * q + 9);
  plan.copy_words = words + (16 - words % 32 + 32) % 32;
  const int64_t filter_values = p.R * 2 * 2 * plan.copy_words;
  plan.patch_offset = static_cast<int>(depthwise::round_up(filter_values + depthwise::kMaxVectorLength, 8));
  const std::size_t patch_end =
      plan.patch_offset * kValueSize +
      std::max<std::size_t>(std::size_t(plan.patch_rows) * plan.patch_pitch * kValueSize,
                            std::size_t(plan.tile_rows) * output_pitch(plan.m_tiles) * sizeof(float));
  plan.flag_word = static_cast<int>(patch_end / 4);  // patch_end is a multiple of 16 bytes
  plan.shared_bytes = patch_end + 4;
  if (plan.shared_bytes > depthwise::kSharedBudget) return std::nullopt;
  return plan;
}

// Whether a channels_last depthwise convolution of `dtype` is faster relaid out to NCHW for the
// tensor-core kernel: in the model, from 10x10 filters on (11x11 on 16 channels at 56x56: mma
// and two relayouts 130 ns against 181 of FFMA; 31x31 the staged NHWC kernel cannot hold, 20x).
template <bool kInputGradient>
bool depthwise_mma_pays_for_relayout(const ConvParams& p, at::ScalarType dtype) {
  return (dtype == at::kHalf || dtype == at::kBFloat16) && p.R * p.S >= 100 &&
         depthwise_mma_plan<kInputGradient>(p).has_value();
}

// The tensor-core kernel for a half type where its plan applies. Returns whether it ran.
template <bool kInputGradient, typename T>
bool depthwise_mma(const ConvParams& p, const T* src, const T* w, const T* bias, T* dst, cudaStream_t stream) {
  if constexpr (!std::is_same_v<T, c10::Half> && !std::is_same_v<T, c10::BFloat16>) {
    return false;
  } else {
    const std::optional<depthwise::mma::Plan> plan = depthwise_mma_plan<kInputGradient>(p);
    if (!plan) return false;
    const Grid grid{plan->out_planes * plan->tiles_h * plan->tiles_w};
    const auto launch = [&](auto blocks, auto m_tiles) {
      constexpr int kQ = decltype(blocks)::value, kMTiles = decltype(m_tiles)::value;
      launch_grid(depthwise_mma_kernel<T, kQ, kMTiles, kInputGradient>, grid, dim3(32, plan->warps),
                  plan->shared_bytes, stream, p, *plan, src, w, bias, dst);
    };
    const auto with_m_tiles = [&](auto blocks) {
      if (plan->m_tiles == 1) {
        launch(blocks, std::integral_constant<int, 1>{});
      } else if (plan->m_tiles == 2) {
        launch(blocks, std::integral_constant<int, 2>{});
      } else {
        launch(blocks, std::integral_constant<int, 4>{});
      }
    };
    if (plan->blocks_per_row == 2) {
      with_m_tiles(std::integral_constant<int, 2>{});
    } else {
      with_m_tiles(std::integral_constant<int, 3>{});
    }
    return true;
  }
}

}  // namespace convkernels::cuda
