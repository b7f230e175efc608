// channels_last_wgrad_kernel: the weight gradient (wgrad_problem.cuh), its pieces put together
// (GradOutputIterator and ActivationTapIterator, the multistage mainloop, a TransposedMma of
// math_policies.cuh: tensor cores for half types and TF32, CUDA cores for IEEE float32 and
// float64), and its launch.
//
// block_index = (m tile of Kg, n tile of R*S*Cg, (group, split)). dw is written as torch lays out
// a channels_last weight, (K, R, S, C/g) in memory: the GEMM's own column order, so a block
// writes its tile where it belongs. With one split (the pixels in one block) the block stores dw
// itself, in the dtype. With more, every block stores its accumulators (float, or double for
// float64) to its split's slice of a workspace, and channels_last_wgrad_reduce_kernel adds the
// splits in split order. The order of every addition is fixed by the shape alone (no atomics), so
// every run gives the same bits. Stores are pairs, 4 to 16 bytes a lane, or in half types 16-byte
// vectors (store_filter_tile): the filter is R*S*Cg/(N*P*Q) the size of the operands, so this is
// not the traffic that matters.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../../simt/simt.h"
#include "../launch.cuh"
#include "mainloop.cuh"
#include "math_policies.cuh"
#include "packed_groups.cuh"
#include "tile_choice.cuh"
#include "warpgroup_mma.cuh"
#include "warpgroup_wgrad_tile.cuh"
#include "wgrad_iterators.cuh"
#include "wgrad_problem.cuh"
#include "wgrad_tile.cuh"

namespace convkernels::cuda::nhwc_igemm {

// Where the block's row m (of GEMM group `group`) starts in dw or a workspace slice `to`
// ((K, R, S, C/g) in memory), or null for a row past its convolution group's outputs.
template <typename Out>
__device__ __forceinline__ Out* filter_row(const NhwcWgradProblem& p, Out* to, int group, int m) {
  const int row_group = m / p.packed_k, k = m - row_group * p.packed_k;
  if (row_group >= p.packed || k >= p.filter_k) return nullptr;
  return to + ((int64_t{group} * p.packed + row_group) * p.filter_k + k) * p.R * p.S * p.filter_c;
}

// Column n of the block's GEMM group as the channel offset in a row of dw: tap * filter_c + c, or -1
// past the filter or outside row m's convolution group (packed).
__device__ __forceinline__ int64_t filter_column(const NhwcWgradProblem& p, int m, int n) {
  const int tap = n / p.c_per_group, channel = n - tap * p.c_per_group, column_group = channel / p.packed_c;
  const int c = channel - column_group * p.packed_c;
  const bool inside = tap < p.R * p.S && column_group == m / p.packed_k && c < p.filter_c;
  return inside ? int64_t{tap} * p.filter_c + c : -1;
}

// Row m's accumulators of m16 tile i (its rows g, or g + 8 for `half`) in half types, 8 columns a
// lane: a quad transposes 4 n8 tiles' pairs (2 shuffles) so that each lane holds one tile's 8
// columns, and stores them as 16 bytes where they belong (row: null past the group's outputs). The
// whole warp calls it; 8 columns never straddle a tap or a group (filter_c and packed_c % 8 == 0).
template <class Tile, class Mma, typename Out>
__device__ __forceinline__ void store_row_vectors(const NhwcWgradProblem& p, const Mma& mma, Out* row, int m,
                                                  int n0, int i, int half) {
  struct alignas(16) Vector {
    uint32_t pairs[4];
  };
  const int t = mma.lane % 4;
#pragma unroll
  for (int j0 = 0; j0 < Tile::kMmaTilesN; j0 += 4) {
    // v[c]: this lane's pair of n8 tile j0 + c; after the transpose, lane c's pair of tile j0 + t,
    // so that v is tile j0 + t's columns 0-7 in order.
    uint32_t v[4];
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const Out first = static_cast<Out>(mma.acc[i][j0 + c][2 * half]);
      const Out second = static_cast<Out>(mma.acc[i][j0 + c][2 * half + 1]);
      v[c] = uint32_t{first.x} | uint32_t{second.x} << 16;
    }
#pragma unroll
    for (int distance = 2; distance >= 1; distance /= 2) {
      const bool upper = t & distance;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        if (c & distance) continue;  // c and c + distance exchange across lanes t and t ^ distance
        const uint32_t got = __shfl_xor_sync(0xffffffffu, upper ? v[c] : v[c + distance], distance);
        (upper ? v[c] : v[c + distance]) = got;
      }
    }
    const int64_t column = filter_column(p, m, n0 + mma.n0 + 8 * (j0 + t));
    if (row != nullptr && column >= 0) {
      simt::st_global(reinterpret_cast<Vector*>(row + column), Vector{{v[0], v[1], v[2], v[3]}});
    }
  }
}

// The block's accumulators, for rows m0.. of GEMM group `group` and its columns n0.., into `to`
// as Out (dw in its dtype, or a split's slice of the workspace in the accumulators' type): the
// pairs of one convolution group (packed), less padded channels and taps past the filter. Pairs
// fill a quad's 16 or 32 bytes of a row a store; half types store 16 bytes a lane
// (store_row_vectors) where 8 columns never straddle a tap or a group: whole sectors.
template <class Tile, class Mma, typename Out>
__device__ void store_filter_tile(const NhwcWgradProblem& p, const Mma& mma, Out* to, int group, int m0, int n0) {
  struct alignas(2 * sizeof(Out)) Pair {
    Out first, second;
  };
  constexpr bool kVectorTypes = sizeof(Out) == 2 && Tile::kMmaTilesN % 4 == 0;
  const bool vectors = kVectorTypes && p.filter_c % 8 == 0 && p.packed_c % 8 == 0;
  const bool pairs = p.filter_c % 2 == 0;  // then column pairs (2t, 2t + 1) are aligned
  const int g = mma.lane / 4, t = mma.lane % 4;
#pragma unroll
  for (int i = 0; i < Tile::kMmaTilesM; ++i) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int m = m0 + mma.m0 + 16 * i + g + 8 * half;
      Out* const row = filter_row(p, to, group, m);
      if constexpr (kVectorTypes) {
        if (vectors) {
          store_row_vectors<Tile>(p, mma, row, m, n0, i, half);
          continue;
        }
      }
      if (row == nullptr) continue;
#pragma unroll
      for (int j = 0; j < Tile::kMmaTilesN; ++j) {
        // Found again for each row rather than held (a 256-column tile's would take 96 registers);
        // c + 1 is in the same tap and group (packed_c is even).
        const int64_t column = filter_column(p, m, n0 + mma.n0 + 8 * j + 2 * t);
        if (column < 0) continue;
        Out* const at = row + column;
        const Out first = static_cast<Out>(mma.acc[i][j][2 * half]);
        const Out second = static_cast<Out>(mma.acc[i][j][2 * half + 1]);
        if (pairs) {
          simt::st_global(reinterpret_cast<Pair*>(at), Pair{first, second});
        } else {
          simt::st_global(at, first);
          if (column % p.filter_c + 1 < p.filter_c) simt::st_global(at + 1, second);
        }
      }
    }
  }
}

// cp.async needs sm_80: for older targets the kernel is an empty stub that the host never launches
// (nhwc_igemm_operands_fit checks the device).
template <typename T, class Tile, class Mma, bool kPacked>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocksPerSm)
    channels_last_wgrad_kernel(Grid first, NhwcWgradProblem p, const T* __restrict__ x, const T* __restrict__ dy,
                               typename Mma::Accumulator* __restrict__ partials, T* __restrict__ dw) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();
#else
  SIMT_DYNAMIC_SHARED(char, shared);
  const Grid block = block_index(first);
  const int m0 = static_cast<int>(block.x) * Tile::kBlockM;
  const int n0 = static_cast<int>(block.y) * Tile::kBlockN;
  const int group = static_cast<int>(block.z / p.splits), split = static_cast<int>(block.z % p.splits);
  const int64_t begin = split * p.pixels_per_split;
  const int64_t end = begin + p.pixels_per_split < p.pixels() ? begin + p.pixels_per_split : p.pixels();

  GradOutputIterator<Tile, T> a(p, dy, group, m0, begin, end, threadIdx.x);
  ActivationTapIterator<Tile, T> b(p, x, group, n0, begin, end, threadIdx.x);
  Mma mma(threadIdx.x);
  using Tiles = std::conditional_t<kPacked, DiagonalTiles<Tile::kMmaTilesM, Tile::kMmaTilesN>, EveryTile>;
  const Tiles tiles(p, m0 + mma.m0, n0 + mma.n0);
  // The host keeps pixels_per_split / kBlockK within an int.
  const int steps = static_cast<int>((end - begin + Tile::kBlockK - 1) / Tile::kBlockK);
  pipelined_mainloop<Tile, Mma>(
      steps,
      [&](char* stage) {
        a.copy(p, stage);
        b.copy(p, stage + Tile::kTileBytesA);
        a.advance();
        b.advance(p);
      },
      [](char*) {}, [&](const char* stage) { mma.multiply(stage, stage + Tile::kTileBytesA, tiles); }, shared);
  finish_multiplies(mma);
  if (p.splits == 1) {
    store_filter_tile<Tile>(p, mma, dw, group, m0, n0);
  } else {
    store_filter_tile<Tile>(p, mma, partials + split * p.filter_numel(), group, m0, n0);
  }
#endif
}

constexpr int kWgradReduceThreads = 256;

// dw[i] = the sum over splits, in split order, of partials[split][i] (both (K, R, S, C/g)).
template <typename T, typename Accumulator>
__global__ void __launch_bounds__(kWgradReduceThreads)
    channels_last_wgrad_reduce_kernel(Grid first, NhwcWgradProblem p, const Accumulator* __restrict__ partials,
                                      T* __restrict__ dw) {
  const int64_t size = p.filter_numel(), i = block_index(first).x * kWgradReduceThreads + threadIdx.x;
  if (i >= size) return;
  Accumulator sum = 0;
  for (int split = 0; split < p.splits; ++split) sum += simt::ld_global(partials + split * size + i);
  simt::st_global(dw + i, static_cast<T>(sum));
}

// Enough blocks for two per SM of a large GPU, each split at least kMinSplitSteps stages deep, and
// no more splits than keep the workspace's round trip (each split's partials written, then read by
// the reduction) within the bytes of the operands themselves: where the filter is large against
// the activations (late layers, small batches) a split would cost more traffic than it saves time.
// The split depends on the shape only, so the bits do not depend on the GPU.
constexpr int64_t kWgradTargetBlocks = 256;
constexpr int64_t kWgradMinSplitSteps = 4;

// The block tile of a weight gradient: its rows, columns and pixels a stage.
struct WgradBlock {
  int m, n, k;
};

// Fills p's splits, pixels_per_split and stage_* for blocks of `block`, operands of T and partials
// of Accumulator (the rest of p is filled).
template <typename T, typename Accumulator>
void plan_wgrad_splits(NhwcWgradProblem& p, WgradBlock block) {
  const auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  const int64_t tiles = ceil_div(p.gemm_rows(), block.m) * ceil_div(int64_t{p.R} * p.S * p.c_per_group, block.n) *
                        p.groups;
  const int64_t steps = ceil_div(p.pixels(), block.k);
  const int64_t operand_bytes = (p.N * p.H * p.W * p.C + p.pixels() * p.K) * int64_t{sizeof(T)};
  const int64_t trip = 2 * p.filter_numel() * int64_t{sizeof(Accumulator)};  // the workspace's, a split
  const int64_t wanted = std::max<int64_t>(
      1, std::min({ceil_div(kWgradTargetBlocks, tiles), steps / kWgradMinSplitSteps, operand_bytes / trip}));
  p.pixels_per_split = ceil_div(steps, wanted) * block.k;
  p.splits = static_cast<int>(ceil_div(p.pixels(), p.pixels_per_split));
  const int64_t PQ = int64_t{p.P} * p.Q;
  p.stage_n = block.k / PQ;
  const int rest = static_cast<int>(block.k % PQ);
  p.stage_p = rest / p.Q;
  p.stage_q = rest % p.Q;
}

// The tiles of a weight gradient of 64 * kRows output channels by 64 * kColumns columns of (tap,
// channel) on warps: on tensor cores (mma.sync), warps of 32 x 32 * kColumns; on CUDA cores (IEEE
// float32), warps of 64 x 32, 16 FMAs a lane per 16 bytes it reads of a stage (32 x 32's: 8 per
// 12), but for 64 x 64, which keeps WgradTile64's four warps of 32 x 32.
template <typename T, class Math, int kRows, int kColumns>
using WgradWarpsTile = std::conditional_t<
    std::is_same_v<Math, TensorCoreMath>, WgradTile<T, 64 * kRows, 64 * kColumns, 32, 32 * kColumns, 4>,
    std::conditional_t<kRows * kColumns == 1, WgradTile64<T>, WgradTile<T, 64 * kRows, 64 * kColumns, 64, 32, 4>>>;

// Calls launch.template operator()<Tile, Mma, kPacked>() with the kernel a weight gradient takes.
// On tensor cores and for IEEE float32, 64 or 128 output channels (rows) by 64 or 128 columns of
// (tap, channel): the tile table's (tile_choice.cuh), else 128 each way where doubling pays (dy
// is read once per column tile, x once per row tile): on tensor cores where the doubled extent
// pads the GEMM's to at most 1.25x what 64 does; on CUDA cores, bound by their FMAs, where it pads
// nothing more. On an sm_90 GPU half types multiply on warpgroups with wgmma (a 256-wide tile's 128
// accumulators a thread spill), else on WgradWarpsTile's warps. Packed groups (at most 64 rows;
// their warps skip the tiles off the diagonal, which a wgmma cannot) take 128 columns of
// WgradWarpsTile where that pays, else WgradTile64. 3xTF32 (its split fragments need the
// registers) and float64 (64 x 32 warps' accumulators would) take WgradTile64.
template <typename T, class Math, class Launch>
void with_wgrad_kernel(const NhwcWgradProblem& p, Launch&& launch) {
  using Tile64 = WgradTile64<T>;
  constexpr bool kTensorCores = std::is_same_v<Math, TensorCoreMath>;
  if constexpr (kTensorCores || (std::is_same_v<Math, CudaCoreMath> && std::is_same_v<T, float>)) {
    const auto doubling_pays = [](int64_t extent) {
      const auto padded = [&](int64_t tile) { return (extent + tile - 1) / tile * tile; };
      return kTensorCores ? 4 * padded(128) <= 5 * padded(64) : padded(128) == padded(64);
    };
    const bool wide = doubling_pays(int64_t{p.R} * p.S * p.c_per_group);
    if (p.packed > 1 && wide) {
      using Tile = WgradWarpsTile<T, Math, 1, 2>;
      return launch.template operator()<Tile, typename Math::template TransposedMma<Tile, T>, true>();
    }
    if (p.packed == 1) {
      constexpr bool kWgmma = kTensorCores && sizeof(T) == 2;
      // kRows and kColumns: 1 for 64, 2 for 128.
      const auto with = [&]<int kRows, int kColumns>() {
        if constexpr (kWgmma) {
          if (takes_wgmma()) {
            using Tile = WarpgroupWgradTile<T, 64 * kColumns, kRows>;
            return launch.template operator()<Tile, WarpgroupMma<Tile, T>, false>();
          }
        }
        using Tile = WgradWarpsTile<T, Math, kRows, kColumns>;
        launch.template operator()<Tile, typename Math::template TransposedMma<Tile, T>, false>();
      };
      const bool tall = doubling_pays(p.gemm_rows());
      const auto key = [&p] { return tile_key<T>("wgrad", kWgmma && takes_wgmma() ? "wgmma" : Math::kName, p); };
      switch (tile_table().choose(
          key,
          {tile_name<WgradWarpsTile<T, Math, 2, 2>>(), tile_name<WgradWarpsTile<T, Math, 1, 2>>(),
           tile_name<WgradWarpsTile<T, Math, 2, 1>>(), tile_name<WgradWarpsTile<T, Math, 1, 1>>()},
          wide ? (tall ? 0 : 1) : (tall ? 2 : 3))) {
        case 0: return with.template operator()<2, 2>();
        case 1: return with.template operator()<1, 2>();
        case 2: return with.template operator()<2, 1>();
        default: return with.template operator()<1, 1>();
      }
    }
  }
  using Mma = typename Math::template TransposedMma<Tile64, T>;
  if (p.packed > 1) return launch.template operator()<Tile64, Mma, true>();
  launch.template operator()<Tile64, Mma, false>();
}

// The block tile with_wgrad_kernel launches a problem on.
template <typename T, class Math>
WgradBlock wgrad_block(const NhwcWgradProblem& p) {
  WgradBlock block{};
  with_wgrad_kernel<T, Math>(p, [&]<class Tile, class, bool>() {
    block = {Tile::kBlockM, Tile::kBlockN, Tile::kBlockK};
  });
  return block;
}

// The accumulators' type of a weight gradient multiplied as Math says.
template <typename T, class Math>
using WgradAccumulator = typename Math::template TransposedMma<WgradTile64<T>, T>::Accumulator;

// dw (K, R, S, C/g in memory) = the weight gradient, multiplied as Math says
// (math_policies.cuh); p's splits planned for wgrad_block<T, Math>(p); `partials` holds
// p.splits * p.filter_numel() accumulators where p.splits > 1 (else it is unused); x and dy are
// 16-byte aligned with channels per group a multiple of 16 bytes (nhwc_igemm_wgrad.cu).
template <typename T, class Math>
void launch_channels_last_wgrad(const NhwcWgradProblem& p, const T* x, const T* dy,
                                WgradAccumulator<T, Math>* partials, T* dw, cudaStream_t stream) {
  with_wgrad_kernel<T, Math>(p, [&]<class Tile, class Mma, bool kPacked>() {
    const Grid grid{(p.gemm_rows() + Tile::kBlockM - 1) / Tile::kBlockM,
                    (int64_t{p.R} * p.S * p.c_per_group + Tile::kBlockN - 1) / Tile::kBlockN,
                    int64_t{p.groups} * p.splits};
    launch_grid(channels_last_wgrad_kernel<T, Tile, Mma, kPacked>, grid, dim3(Tile::kThreads), Tile::kMainloopBytes,
                stream, p, x, dy, partials, dw);
  });
  if (p.splits == 1) return;
  const Grid reduce_grid{(p.filter_numel() + kWgradReduceThreads - 1) / kWgradReduceThreads, 1, 1};
  launch_grid(channels_last_wgrad_reduce_kernel<T, WgradAccumulator<T, Math>>, reduce_grid,
              dim3(kWgradReduceThreads), 0, stream, p, static_cast<const WgradAccumulator<T, Math>*>(partials), dw);
}

}  // namespace convkernels::cuda::nhwc_igemm
