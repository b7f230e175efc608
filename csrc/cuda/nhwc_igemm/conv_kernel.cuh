// channels_last_igemm_kernel: the channels_last implicit GEMM, its pieces put together (one block
// tile: iterators, multistage mainloop, warp tiles on tensor or CUDA cores or warpgroups on wgmma,
// epilogue), and its launch.
// block_index = (m tile, n tile, group).
#pragma once

#include <cstdint>
#include <type_traits>

#include "../launch.cuh"
#include "activation_iterator.cuh"
#include "epilogue.cuh"
#include "filter_iterator.cuh"
#include "mainloop.cuh"
#include "math_policies.cuh"
#include "packed_groups.cuh"
#include "problem.cuh"
#include "tile_choice.cuh"
#include "tile_shape.cuh"
#include "tma_conv_kernel.cuh"
#include "warpgroup_mma.cuh"
#include "warpgroup_tile.cuh"

namespace convkernels::cuda::nhwc_igemm {

// cp.async needs sm_80: for older targets the kernel is an empty stub that the host never launches
// (nhwc_igemm_operands_fit checks the device).
// kSeveralTaps: a stage holds several filter taps (problem.cuh's taps_per_stage > 1). kPacked: the
// problem packs several convolution groups per GEMM group, whose warps multiply only the diagonal
// blocks (packed_groups.cuh). kCopyBytes: the pieces the operands are copied in (chunk_copies.cuh),
// 8 bytes where a group's channels are (a tap a piece, so several taps a stage).
template <typename T, class Tile, class Mma, bool kSeveralTaps, bool kPacked, int kCopyBytes>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocksPerSm)
    channels_last_igemm_kernel(Grid first, NhwcConvProblem p, const T* __restrict__ in,
                               const T* __restrict__ filters, const T* __restrict__ bias, T* __restrict__ out) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();
#else
  SIMT_DYNAMIC_SHARED(char, shared);
  const Grid block = block_index(first);
  const int group = static_cast<int>(block.z);
  const int64_t m0 = block.x * Tile::kBlockM;
  const int n0 = static_cast<int>(block.y * Tile::kBlockN);

  const ActivationIterator<Tile, T, kCopyBytes> a(p, in, group, m0, threadIdx.x);
  const FilterIterator<Tile, T, kPacked, kCopyBytes> b(p, filters, group, n0, threadIdx.x);
  Mma mma(threadIdx.x);
  if constexpr (kPacked) {
    const OwnGroupChunks<Tile::kMmaTilesN, 16 / sizeof(T)> chunks(p, n0 + mma.n0);
    multistage_mainloop<Tile, kSeveralTaps>(p, a, b, mma, chunks, n0, shared);
  } else {
    multistage_mainloop<Tile, kSeveralTaps>(p, a, b, mma, EveryChunk{}, n0, shared);
  }
  Epilogue<Tile, T, Mma>::store(p, mma, bias, out, group, m0, n0, shared);
#endif
}

// out = the problem's GEMM (+ bias, which may be nullptr), multiplied as Math says: TensorCoreMath
// (float16, bfloat16, float32 in TF32), ThreeTf32Math (float32) or CudaCoreMath (IEEE float32,
// float64). Pointers are 16-byte aligned and the channels per group of `in` a multiple of 16 bytes,
// or 8 bytes in all (nhwc_igemm_passes.cu).
template <typename T, class Math>
void launch_channels_last_igemm(const NhwcConvProblem& p, const T* in, const T* filters, const T* bias, T* out,
                                cudaStream_t stream) {
  const auto launch = [&]<class Tile, class Mma, bool kSeveralTaps, bool kPacked, int kCopyBytes = 16>(Tile) {
    const Grid grid{(p.M() + Tile::kBlockM - 1) / Tile::kBlockM,
                    (p.k_per_group + Tile::kBlockN - 1) / Tile::kBlockN, p.groups};
    launch_grid(channels_last_igemm_kernel<T, Tile, Mma, kSeveralTaps, kPacked, kCopyBytes>, grid,
                dim3(Tile::kThreads), Tile::kMainloopBytes, stream, p, in, filters, bias, out);
  };
  // launch on a Tile with the Mma of MathOf (Math, or WarpgroupMath), for problems of a kind.
  const auto kernel_of = [&]<class MathOf, bool kSeveralTaps, bool kPacked, int kCopyBytes = 16>() {
    return [&]<class Tile>(Tile tile) {
      launch.template operator()<Tile, typename MathOf::template Mma<Tile, T>, kSeveralTaps, kPacked, kCopyBytes>(
          tile);
    };
  };
  // The tile table's key of the problem on `math`.
  const auto key = [&p](const char* math) { return [&p, math] { return tile_key<T>("conv", math, p); }; };
  // Channels padded to 8 bytes, not 16 (nhwc_igemm_passes.cu): copied in 8-byte pieces, a tap
  // each, whatever taps_per_stage says, on the 64x64 tiles only (first layers: few output
  // channels; and twice the copies' rows a thread would spill the larger tiles' registers).
  const bool in_pieces = p.c_per_group * sizeof(T) % 16 != 0;
  // On an sm_90 GPU (or the emulator's sm_90a), tensor-core GEMMs multiply on warpgroups with
  // wgmma, but for packed groups, whose warps skip the blocks off the diagonal (a wgmma cannot).
  // As on mma.sync, stages of several taps (their per-thread cursor would spill the 128x128
  // tile's TF32 kernel) take the 128x64 and 64x64 tiles.
  if constexpr (std::is_same_v<Math, TensorCoreMath>) {
    if (p.packed == 1 && takes_wgmma()) {
      // Whole 16-byte channel pieces take the warp-specialised TMA kernel; in TF32 not on the
      // 128x256 tile, whose float32 epilogue slices and stages exceed an SM's shared memory, nor
      // where outputs are copied a value at a time (its accumulators leave no room, epilogue.cuh).
      if (!in_pieces && tma_igemm_applies(p) && takes_tma()) {
        const auto tma = [&]<class Tile>(Tile) {
          launch_channels_last_tma_igemm<T, Tile>(p, in, filters, bias, out, stream);
        };
        if constexpr (std::is_same_v<T, float>) {
          return launch_with_tile_of<TmaWideTile, TmaNarrowTile>(p, key("TMA wgmma"), tma);
        } else {
          if (!OutputPieces<T>::takes_vectors(p)) {
            return launch_with_tile_of<TmaWideTile, TmaNarrowTile>(p, key("TMA wgmma"), tma);
          }
          return launch_with_tile_of<TmaWidestTile, TmaWideTile, TmaNarrowTile>(p, key("TMA wgmma"), tma);
        }
      }
      using W = WarpgroupMath;
      if (in_pieces) return kernel_of.template operator()<W, true, false, 8>()(WarpgroupSmallTile{});
      if (p.taps_per_stage > 1) {
        return launch_with_tile_of<WarpgroupNarrowTile, WarpgroupSmallTile>(
            p, key("wgmma"), kernel_of.template operator()<W, true, false>());
      }
      return launch_with_tile_of<WarpgroupWideTile, WarpgroupNarrowTile, WarpgroupSmallTile>(
          p, key("wgmma"), kernel_of.template operator()<W, false, false>());
    }
  }
  if (in_pieces) return kernel_of.template operator()<Math, true, false, 8>()(SmallTile{});
  const auto packed = kernel_of.template operator()<Math, false, true>();
  const auto several_taps = kernel_of.template operator()<Math, true, false>();
  const auto unpacked = kernel_of.template operator()<Math, false, false>();
  // Packed GEMM groups are at most 64 columns wide (nhwc_igemm_passes.cu): no 128-wide tile. Nor
  // for stages of several taps: their cursor is the thread's own (filter_tap_cursor.cuh), and the
  // wide tile's 64x64 tensor-core warps have no register left for it.
  if constexpr (std::is_same_v<T, double>) {
    if (p.packed > 1) return launch_with_tile_of<Float64Tile, SmallTile>(p, key(Math::kName), packed);
    if (p.taps_per_stage > 1) return launch_with_tile_of<Float64Tile, SmallTile>(p, key(Math::kName), several_taps);
    launch_with_tile_of<Float64Tile, SmallTile>(p, key(Math::kName), unpacked);
  } else {
    if (p.packed > 1) return launch_with_tile_of<NarrowTile, SmallTile>(p, key(Math::kName), packed);
    if (p.taps_per_stage > 1) return launch_with_tile_of<NarrowTile, SmallTile>(p, key(Math::kName), several_taps);
    // Outputs stored a value at a time (the shuffle, odd channels) copy values only on the
    // tiles with registers for it (epilogue.cuh).
    if (!OutputPieces<T>::takes_vectors(p) && !copies_values<typename Math::Wide>) {
      return launch_with_tile_of<NarrowTile, SmallTile>(p, key(Math::kName), unpacked);
    }
    launch_with_tile_of<typename Math::Wide, NarrowTile, SmallTile>(p, key(Math::kName), unpacked);
  }
}

}  // namespace convkernels::cuda::nhwc_igemm
