// The weight gradient of large depthwise filters on tensor cores (float16 and bfloat16, NCHW, unit
// stride and dilation). Per filter k of channel c = k / M (M the channel multiplier),
//   dw[k][r][s] = sum over n, p, q of dy[n, k][p][q] * x[n, c][p + r - pad_h][q + s - pad_w].
// With u = p + r - pad_h the input row, each input row adds a product of depth Q:
//   D[s][r] += sum_q X_u[s][q] * DY_u[q][r],
//   X_u[s][q] = x[u][q + s - pad_w]   (a Hankel matrix of one x row),
//   DY_u[q][r] = dy[u + pad_h - r][q] (its column r one dy row),
// so that M is the filter's columns, N its rows and the depth runs over (image, u, q). One
// m16n8k16 covers 16 filter columns, 8 filter rows and 16 output columns: four warps of 8 filter
// rows by two m-tiles cover filters up to 32x32, at 32 x 32 x H x Q' multiply-adds (Q' = Q rounded
// up to 16) for R x S x P x Q useful ones (31x31 at 56x56, padding 15: 1.2x; warps and m-tiles past
// the filter skip their products).
//
// A block owns one filter and a range of images (a split). Per image it stages the x plane as T in
// two copies, the second shifted by one value, so that a lane's pair (x[j], x[j + 1]) is one
// aligned word whatever the parity of j (X_u's fragment words a0, a1 == a2 and a3 start at j,
// j + 8 and j + 16), and the dy plane below kDyLead zero rows and with zero columns past Q, so that
// every column r of DY_u is a staged row: its B fragment is two words a lane. Those zeros would
// make NaN (0 * Inf) of an Inf or NaN in x that torch's sum never multiplies by them, and padded
// rows of x that torch multiplies by dy (a NaN in dy makes every tap NaN in torch) the GEMM skips:
// a block that stages an Inf or NaN computes that image as torch does instead, tap by tap. Splits
// write float partials in dw's order, summed in split order (depthwise_wgrad_reduce):
// deterministic, no atomics.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <type_traits>

#include <ATen/core/TensorBody.h>
#include <ATen/ops/empty.h>

#include "depthwise_mma.cuh"
#include "depthwise_nhwc/wgrad_kernel.cuh"
#include "launch.cuh"
#include "mma.cuh"

namespace convkernels::cuda {

namespace depthwise::mma_wgrad {

constexpr int kWarps = 4;              // 8 filter rows each
constexpr int kMaxTaps = 8 * kWarps;   // filter rows, and columns (two m16 tiles)
constexpr int kDyLead = kMaxTaps;      // zero rows above the staged dy plane
// The filter's float sums, [r][s]: 4 mod 16 puts a lane's accumulator rows 2t (of 4 t) 8 banks
// apart, its columns g on the 8 between, so the epilogue's adds meet no bank conflict.
constexpr int kSumPitch = kMaxTaps + 4;
constexpr int64_t kMaxSharedBytes = 100 * 1024;
constexpr int64_t kTargetBlocks = 1024;  // a few waves on current GPUs

struct Plan {
  int q_steps;           // 16-column steps over dy's rows
  int x_pitch;           // words from copy 0 of a staged x row to copy 1 (16 mod 32: the copies a
                         // warp reads at once sit in different banks)
  int x_row_pitch;       // words from one staged x row to the next (12 mod 32: the staging's
                         // stores to two consecutive rows of up to 16 values, 9 words in copy 1,
                         // sit in different banks)
  int dy_rows, dy_pitch; // staged dy rows, and words a row (4 mod 8: 8 rows x 4 words, 32 banks)
  int dy_offset, sum_offset, flag_word;  // in words from the start of shared memory
  int64_t images_per_split, splits;
  std::size_t shared_bytes;
};

// The plan of a filter of 100 taps and more (RepLKNet's 13x13 to 31x31: where the tensor cores pay,
// as the forward's depthwise_mma_pays_for_relayout), or none where the kernel does not apply.
inline std::optional<Plan> plan_for(const ConvParams& p) {
  if (p.stride_h != 1 || p.stride_w != 1 || p.dil_h != 1 || p.dil_w != 1 || p.R > kMaxTaps || p.S > kMaxTaps ||
      p.R * p.S < 100) {
    return std::nullopt;
  }
  const int64_t q_steps = (p.Q + 15) / 16;
  const int64_t x_words = 8 * q_steps + 16;  // staged columns 0 .. 16 q_steps + 31, two a word
  const int64_t x_pitch = x_words + (16 - x_words % 32 + 32) % 32;
  // Rows up to the last input row's r = 0 (u + pad_h), and dy's own (more where pad_h >= R).
  const int64_t dy_rows = kDyLead + std::max(p.H + p.pad_h, p.P), dy_pitch = 8 * q_steps + 4;
  const int64_t x_row_pitch = 2 * x_pitch + 12;
  const int64_t dy_offset = p.H * x_row_pitch, sum_offset = dy_offset + dy_rows * dy_pitch;
  const int64_t flag_word = sum_offset + kMaxTaps * kSumPitch;
  if (4 * (flag_word + 1) > kMaxSharedBytes) return std::nullopt;
  Plan plan{};
  plan.q_steps = static_cast<int>(q_steps);
  plan.x_pitch = static_cast<int>(x_pitch);
  plan.x_row_pitch = static_cast<int>(x_row_pitch);
  plan.dy_rows = static_cast<int>(dy_rows);
  plan.dy_pitch = static_cast<int>(dy_pitch);
  plan.dy_offset = static_cast<int>(dy_offset);
  plan.sum_offset = static_cast<int>(sum_offset);
  plan.flag_word = static_cast<int>(flag_word);
  plan.shared_bytes = static_cast<std::size_t>(4 * (flag_word + 1));
  const int64_t wanted = std::clamp<int64_t>((kTargetBlocks + p.K - 1) / p.K, 1, p.N);
  plan.images_per_split = (p.N + wanted - 1) / wanted;
  plan.splits = (p.N + plan.images_per_split - 1) / plan.images_per_split;
  return plan;
}

}  // namespace depthwise::mma_wgrad

// block_index = (filter k, split); 4 warps, warp w the filter rows 8w .. 8w + 7.
template <typename T>
__global__ void __launch_bounds__(32 * depthwise::mma_wgrad::kWarps)
    depthwise_mma_wgrad_kernel(Grid first, ConvParams p, depthwise::mma_wgrad::Plan plan, const T* __restrict__ x,
                               const T* __restrict__ dy, float* __restrict__ partials, T* __restrict__ dw) {
  using namespace depthwise::mma_wgrad;
  SIMT_DYNAMIC_SHARED(uint32_t, shared);
  // Word i of copy c of x row u, at u * x_row_pitch + c * x_pitch + i: staged columns 2i + c, 2i + c + 1.
  uint32_t* const x_words = shared;
  uint32_t* const dy_words = shared + plan.dy_offset;  // row v: dy row v - kDyLead, columns 2i, 2i + 1
  float* const sum = reinterpret_cast<float*>(shared + plan.sum_offset);  // [r][s] at r * kSumPitch + s
  const int64_t block = block_index(first).x;
  const int64_t k = block / plan.splits, split = block % plan.splits;
  const int64_t n_end = std::min(p.N, (split + 1) * plan.images_per_split);
  const int H = static_cast<int>(p.H), W = static_cast<int>(p.W), P = static_cast<int>(p.P);
  const int Q = static_cast<int>(p.Q), R = static_cast<int>(p.R), S = static_cast<int>(p.S);
  const int pad_h = static_cast<int>(p.pad_h), pad_w = static_cast<int>(p.pad_w);
  const int lane = threadIdx.x, warp = threadIdx.y, g = lane / 4, t = lane % 4;
  const int thread = lane + 32 * warp, threads = 32 * kWarps;
  const int r0 = 8 * warp, m_tiles = S > 16 ? 2 : 1;

  T* const x_values = reinterpret_cast<T*>(x_words);
  T* const dy_values = reinterpret_cast<T*>(dy_words);
  // The staged planes' padding (x's columns around each row, dy's rows above and below it and
  // columns past Q) and the sums start at zero; the images overwrite only their values.
  for (int i = thread; i < plan.flag_word; i += threads) simt::st_shared(shared + i, 0u);
  float acc[2][4] = {};
  for (int64_t n = split * plan.images_per_split; n < n_end; ++n) {
    const T* const x_plane = x + (n * p.C + k / (p.K / p.C)) * H * W;
    const T* const dy_plane = dy + (n * p.K + k) * P * Q;
    __syncthreads();  // the previous image's planes are consumed
    if (thread == 0) simt::st_shared(shared + plan.flag_word, 0u);
    __syncthreads();
    // Each value loaded once and stored where it sits in every copy; the padding stays zero.
    bool non_finite = false;
    for (int i = thread; i < H * W; i += threads) {
      const T value = simt::ld_global(x_plane + i);
      non_finite |= depthwise::mma::holds_non_finite<T>(value.x);
      const int u = i / W, j = i % W + pad_w;  // staged column j: copy 0 at j, copy 1 at j - 1
      simt::st_shared(x_values + u * plan.x_row_pitch * 2 + j, value);
      if (j > 0) simt::st_shared(x_values + (u * plan.x_row_pitch + plan.x_pitch) * 2 + j - 1, value);
    }
    for (int i = thread; i < P * Q; i += threads) {
      const T value = simt::ld_global(dy_plane + i);
      non_finite |= depthwise::mma::holds_non_finite<T>(value.x);
      simt::st_shared(dy_values + (kDyLead + i / Q) * plan.dy_pitch * 2 + i % Q, value);
    }
    if (non_finite) simt::st_shared(shared + plan.flag_word, 1u);
    __syncthreads();
    if (simt::ld_shared(shared + plan.flag_word) != 0) {
      // Tap by tap over every dy position, x's padding read as zeros, as torch sums them.
      int64_t fmas = 0;
      for (int tap = thread; tap < R * S; tap += threads) {
        const int r = tap / S, s = tap % S;
        float total = 0.0f;
        for (int dy_row = 0; dy_row < P; ++dy_row) {
          const int u = dy_row + r - pad_h;
          const T* const x_row = x_values + u * plan.x_row_pitch * 2;  // copy 0: staged column j at j
          const T* const dy_values_row = dy_values + (kDyLead + dy_row) * plan.dy_pitch * 2;
          for (int q = 0; q < Q; ++q) {
            const float x_value = u >= 0 && u < H ? static_cast<float>(simt::ld_shared(x_row + q + s)) : 0.0f;
            total += static_cast<float>(simt::ld_shared(dy_values_row + q)) * x_value;
          }
          fmas += Q;
        }
        simt::st_shared(sum + r * kSumPitch + s, simt::ld_shared(sum + r * kSumPitch + s) + total);
      }
      simt::note_fma<float>(fmas);
      continue;
    }
    if (r0 >= R) continue;  // the warp's filter rows are all past the filter
    for (int u = 0; u < H; ++u) {
      // Column r0 + g of DY_u is dy row top - g: none of the warp's 8 inside dy, no products.
      const int top = u + pad_h - r0;
      if (top < 0 || top - 7 >= P) continue;
      const uint32_t* const dy_row = dy_words + (kDyLead + top - g) * plan.dy_pitch;
      // Lane g reads the copy of its parity: staged column j = 2 * word + g % 2.
      const uint32_t* const x_row = x_words + u * plan.x_row_pitch + g % 2 * plan.x_pitch;
      for (int step = 0; step < plan.q_steps; ++step) {
        const uint32_t b[2] = {simt::ld_shared(dy_row + 8 * step + t), simt::ld_shared(dy_row + 8 * step + t + 4)};
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          if (mt >= m_tiles) continue;
          // X_u at filter column s = 16 mt + g, output column q = 16 step + 2t: staged column q + s.
          const int word = (16 * step + 16 * mt + g + 2 * t) / 2;
          const uint32_t middle = simt::ld_shared(x_row + word + 4);
          const uint32_t a[4] = {simt::ld_shared(x_row + word), middle, middle, simt::ld_shared(x_row + word + 8)};
          simt::mma_m16n8k16<mma_operand<T>>(acc[mt], a, b);
        }
      }
    }
  }

  // D[s][r] of m-tile mt: a lane holds filter columns 16 mt + g (+ 8) of rows r0 + 2t (+ 1).
  __syncthreads();  // every exact sum is in
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float* const at = sum + (r0 + 2 * t + i % 2) * kSumPitch + 16 * mt + g + 8 * (i / 2);
      simt::st_shared(at, simt::ld_shared(at) + acc[mt][i]);
    }
  }
  __syncthreads();
  const int64_t taps = int64_t{R} * S;
  for (int r = warp; r < R; r += kWarps) {
    for (int s = lane; s < S; s += 32) {
      const float value = simt::ld_shared(sum + r * kSumPitch + s);
      if (plan.splits == 1) {
        simt::st_global(dw + k * taps + r * S + s, static_cast<T>(value));
      } else {
        simt::st_global(partials + (split * p.K + k) * taps + r * S + s, value);
      }
    }
  }
}

// Whether the tensor-core weight gradient takes a depthwise convolution (channels_last callers too,
// through a relayout): a half type and a plan.
inline bool depthwise_mma_wgrad_applies(const ConvParams& p, at::ScalarType dtype) {
  return (dtype == at::kHalf || dtype == at::kBFloat16) && depthwise::mma_wgrad::plan_for(p).has_value();
}

// The tensor-core weight gradient where depthwise_mma_wgrad_applies. Returns whether it ran.
template <typename T>
bool depthwise_mma_wgrad(const ConvParams& p, const T* x, const T* dy, T* dw, const at::TensorOptions& options,
                         cudaStream_t stream) {
  if constexpr (!std::is_same_v<T, c10::Half> && !std::is_same_v<T, c10::BFloat16>) {
    return false;
  } else {
    const std::optional<depthwise::mma_wgrad::Plan> plan = depthwise::mma_wgrad::plan_for(p);
    if (!plan) return false;
    // One split stores dw itself; more add float partials, in split order.
    const int64_t numel = p.K * p.R * p.S;
    const at::Tensor partials =
        plan->splits > 1 ? at::empty({plan->splits, numel}, options.dtype(at::kFloat)) : at::Tensor();
    float* const partial_sums = partials.defined() ? partials.mutable_data_ptr<float>() : nullptr;
    launch_grid(depthwise_mma_wgrad_kernel<T>, Grid{p.K * plan->splits}, dim3(32, depthwise::mma_wgrad::kWarps),
                plan->shared_bytes, stream, p, *plan, x, dy, partial_sums, dw);
    if (plan->splits > 1) {
      depthwise_wgrad_reduce(plan->splits, int64_t{1}, depthwise_nhwc::PartialRow::of<float>(numel, 1), numel,
                             partials.const_data_ptr<float>(), dw, stream);
    }
    return true;
  }
}

}  // namespace convkernels::cuda
