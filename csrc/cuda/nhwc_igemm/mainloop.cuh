// The multistage mainloop of the channels_last implicit GEMM: kStages shared-memory stages in a
// ring, kStages - 1 of them in flight as cp.async groups while the warps multiply the oldest.
//
// Per k-step: wait until the step's group has landed (cp.async.wait_group kStages - 2), one barrier
// (every thread's copies are visible, and every warp has finished the step before, whose slot is
// refilled next), issue the copies of the step kStages - 1 ahead into that slot, then multiply.
// Steps past the end commit empty groups, so the group count stays in step with k.
//
// A multiply may return with some steps' tensor-core work still running (wgmma, warpgroup_mma.cuh:
// Mma::kMultipliesInFlight): then copies run that many steps fewer ahead, so the slot refilled is
// that of a step whose multiply has completed (each warp waited for it before the barrier). wgmma
// reads shared memory through the async proxy, so before the barrier each thread also fences its
// landed copies (generic-proxy writes) for it.
#pragma once

#include <cstdint>

#include "../../simt/cp_async.h"
#include "../../simt/hopper/bulk_copy.h"
#include "../../simt/simt.h"
#include "filter_tap_cursor.cuh"
#include "problem.cuh"
#include "tile_shape.cuh"

namespace convkernels::cuda::nhwc_igemm {

// Steps whose multiply a Mma leaves running when multiply() returns; it then has finish().
template <class Mma>
constexpr int multiplies_in_flight() {
  if constexpr (requires { Mma::kMultipliesInFlight; }) {
    return Mma::kMultipliesInFlight;
  } else {
    return 0;
  }
}

// Whether a Mma multiplies float32 stages that must be rounded to TF32 in shared memory first
// (wgmma reads its operands there, and would truncate them).
template <class Mma>
constexpr bool rounds_stages_to_tf32() {
  if constexpr (requires { Mma::kRoundsStagesToTf32; }) {
    return Mma::kRoundsStagesToTf32;
  } else {
    return false;
  }
}

// The pipeline itself, for any pair of operands: `load_stage(stage)` issues one thread's copies of
// the next k-step into the shared stage at `stage` (A tile, then B tile at kTileBytesA),
// `landed(stage)` may touch the thread's own copies of a stage once they landed, before the
// barrier that shows them to every warp, and `multiply_stage(stage)` multiplies a landed one with
// Mma, k-steps in order. fprop/dgrad (below) and wgrad (wgrad_kernel.cuh) differ only in these.
template <class Tile, class Mma, class LoadStage, class Landed, class MultiplyStage>
__device__ __forceinline__ void pipelined_mainloop(int steps, LoadStage&& load_stage, Landed&& landed,
                                                   MultiplyStage&& multiply_stage, char* shared) {
  constexpr int kInFlight = multiplies_in_flight<Mma>();
  constexpr int kAhead = Tile::kStages - 1 - kInFlight;  // steps copied ahead of the one multiplied
  static_assert(kAhead >= 1, "a stage in flight while one is multiplied");
  const auto stage = [shared](int slot) { return shared + slot * Tile::kStageBytes; };

  int loaded = 0, load_slot = 0;
  const auto load_next = [&] {
    if (loaded < steps) load_stage(stage(load_slot));
    simt::cp_async_commit_group();
    ++loaded;
    load_slot = load_slot + 1 == Tile::kStages ? 0 : load_slot + 1;
  };

  for (int step = 0; step < kAhead; ++step) load_next();
  for (int step = 0, slot = 0; step < steps; ++step) {
    simt::cp_async_wait_group<kAhead - 1>();
    landed(stage(slot));
    if constexpr (kInFlight > 0) simt::fence_proxy_async_shared();  // wgmma's: read by the async proxy
    __syncthreads();
    load_next();
    multiply_stage(stage(slot));
    slot = slot + 1 == Tile::kStages ? 0 : slot + 1;
  }
  simt::cp_async_wait_all();
  __syncthreads();  // the epilogue reuses the stages
}

// Waits for the multiplies a Mma left in flight, then for every warp's: the accumulators are final
// and the stages free for an epilogue to reuse (its stores, generic-proxy writes, fenced after the
// async proxy's reads).
template <class Mma>
__device__ __forceinline__ void finish_multiplies(Mma& mma) {
  if constexpr (multiplies_in_flight<Mma>() > 0) {
    mma.finish();
    simt::fence_proxy_async_shared();
    __syncthreads();
  }
}

// `chunks` (packed_groups.cuh) tells the warp which chunks of a stage each of its n8 tiles takes,
// given the stage's first channel. kSeveralTaps: a stage holds taps_per_stage filter taps.
// `n0`: the block's first column. A warp whose columns all lie past the group's outputs (32
// outputs on a 64-wide tile) copies its share of the stages but multiplies nothing; a warpgroup's
// columns start at the block's.
template <class Tile, bool kSeveralTaps, class IteratorA, class IteratorB, class Mma, class Chunks>
__device__ __forceinline__ void multistage_mainloop(const NhwcConvProblem& p, const IteratorA& a,
                                                    const IteratorB& b, Mma& mma, const Chunks& chunks,
                                                    int n0, char* shared) {
  constexpr int kChannels = Tile::kRowBytes / static_cast<int>(sizeof(typename IteratorA::Element));
  // The host checks that this fits an int (nhwc_igemm_passes.cu), so the loop counts in 32 bits.
  const int steps = static_cast<int>(FilterTapCursor::steps<kSeveralTaps>(p, kChannels));
  FilterTapCursor next;  // the next step to load
  if constexpr (kSeveralTaps) next = FilterTapCursor::first(p, a.copies.channel());
  int multiplied = 0;    // the first channel of the next step to multiply
  const bool has_columns = n0 + mma.n0 < p.k_per_group;
  pipelined_mainloop<Tile, Mma>(
      steps,
      [&](char* stage) {
        a.copy(p, next, stage);
        b.copy(p, next, stage + Tile::kTileBytesA);
        next.advance<kSeveralTaps>(p, kChannels);
      },
      [&](char* stage) {
        if constexpr (rounds_stages_to_tf32<Mma>()) {
          a.round_to_tf32(stage);
          b.round_to_tf32(stage + Tile::kTileBytesA);
        }
      },
      [&](const char* stage) {
        if (has_columns) mma.multiply(stage, stage + Tile::kTileBytesA, chunks.at_stage(multiplied));
        multiplied = multiplied + kChannels < p.c_per_group ? multiplied + kChannels : 0;
      },
      shared);
  finish_multiplies(mma);
}

}  // namespace convkernels::cuda::nhwc_igemm
