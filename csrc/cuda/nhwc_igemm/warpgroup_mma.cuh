// WarpgroupMma: a warpgroup's 64 rows of the block's accumulators and one stage's multiply with
// wgmma (sm_90a): both operands read by the tensor cores straight from the swizzled shared tiles
// through matrix descriptors, no fragment loads, no register staging. The tile says how the stage
// is laid out (Tile::kMajor, kSwizzle, kSwizzleBytes) and where each of its kStepsPerStage k-steps
// starts (a_offset, b_offset): WarpgroupTileShape (fprop and dgrad: K-major operands, k16 or
// TF32 k8 steps 32 bytes apart along the rows) or WarpgroupWgradTile (wgrad: MN-major, 16 pixel
// rows apart). The swizzle acts on the address, so a step's start inside a pattern reads what the
// copies wrote.
//
// multiply() leaves the stage's wgmmas in flight and waits for the stage before it
// (kMultipliesInFlight = 1): the pipeline (mainloop.cuh) refills a stage only after that. The
// tensor cores read float32 operands as TF32, ignoring the low 13 bits of their mantissa, so the
// stages are rounded to TF32 before (kRoundsStagesToTf32).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <type_traits>

#include "../../simt/hopper/wgmma.h"
#include "../mma.cuh"
#include "packed_groups.cuh"
#include "warp_mma.cuh"
#include "warp_tile.cuh"

namespace convkernels::cuda::nhwc_igemm {

// Whether the environment variable `name` allows a kernel family: anything but "0".
inline bool environment_allows(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr || std::string_view(value) != "0";
}

// Whether the GEMMs take their wgmma kernels: on a GPU that runs them (simt::device_runs_wgmma),
// unless the environment has CONVKERNELS_WGMMA=0, which keeps the mma.sync kernels (to compare the
// two on one GPU). Read once.
inline bool takes_wgmma() {
  static const bool allowed = environment_allows("CONVKERNELS_WGMMA");
  return allowed && simt::device_runs_wgmma();
}

template <class Tile, typename T>
struct WarpgroupMma : WarpTile<Tile, float> {
  static_assert(is_tensor_core_element<T>, "float16, bfloat16 or float32 (in TF32)");
  using Base = WarpTile<Tile, float>;
  using Base::acc;
  static constexpr int kMultipliesInFlight = 1;
  // wgmma reads float32 operands from shared memory and truncates them to TF32: the copies round
  // the stages in place first (mainloop.cuh), to nearest with ties away as the mma.sync kernels
  // round their fragments.
  static constexpr bool kRoundsStagesToTf32 = std::is_same_v<T, float>;
  static constexpr int kN = Tile::kBlockN;

  int warpgroup;

  __device__ explicit WarpgroupMma(int tid) : Base(tid), warpgroup(tid / 128) {}

  // acc += A * B over one stage. Packed groups (whose n8 or m16n8 tiles take some chunks or
  // tiles only) take the mma.sync kernels: a wgmma multiplies every column.
  template <class Every = EveryChunk>
  __device__ __forceinline__ void multiply(const char* a, const char* b, const Every& = {}) {
    static_assert(std::is_same_v<Every, EveryChunk> || std::is_same_v<Every, EveryTile>,
                  "wgmma multiplies every chunk and tile of a stage");
    float(&d)[kN / 2] = accumulators();
    simt::wgmma_fence_operand(d);
    simt::wgmma_fence();
#pragma unroll
    for (int step = 0; step < Tile::kStepsPerStage; ++step) {
      simt::wgmma_mma_async<mma_operand<T>, kN, Tile::kMajor, Tile::kMajor>(
          d, descriptor(a + Tile::a_offset(warpgroup, step)), descriptor(b + Tile::b_offset(step)),
          /*accumulate=*/true);
    }
    simt::wgmma_commit_group();
    simt::wgmma_wait_group<kMultipliesInFlight>();
    simt::wgmma_fence_operand(d);
  }

  // Waits for the wgmmas still in flight: the accumulators are final, the stages free.
  __device__ __forceinline__ void finish() {
    simt::wgmma_wait_group<0>();
    simt::wgmma_fence_operand(accumulators());
  }

 private:
  // acc[0][j][e] is register 4j + e of wgmma's accumulator fragment (warpgroup_tile.cuh).
  __device__ __forceinline__ float (&accumulators())[kN / 2] {
    static_assert(sizeof(acc) == kN / 2 * sizeof(float), "one m16 row of n8 tiles a warp");
    return reinterpret_cast<float(&)[kN / 2]>(acc);
  }

  // The leading byte offset is the distance between MN-major atoms (unused by K-major swizzled
  // rows and by MN-major tiles one atom wide).
  __device__ __forceinline__ static uint64_t descriptor(const char* tile) {
    return simt::wgmma_descriptor(tile, Tile::kLeadingBytes, Tile::kSwizzleBytes, Tile::kSwizzle);
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
