// channels_last_tma_igemm_kernel: the channels_last implicit GEMM of fprop and dgrad (problem.cuh)
// for float16, bfloat16 and float32 in TF32 on Hopper (sm_90a), warp-specialised and persistent:
//  - a producer warpgroup, one thread of which copies every stage with the tensor memory accelerator
//    (tma_operands.cuh): the activations of a PixelTile box at one filter tap (padding and
//    strides done by the copy: no address arithmetic, no masks, no registers staged), the
//    filters' block of columns at that tap, both onto the stage's `full` mbarrier;
//  - two consumer warpgroups that wait on `full`, multiply the stage with wgmma (WarpgroupMma:
//    64 rows of the tile each) and release it on its `empty` mbarrier once their wgmmas have read
//    it; then each warp writes its own 16 rows through a shared-memory slice of its own
//    (warp_rows_epilogue.cuh), with no barrier across warps. In TF32 they first round the landed
//    stage in place (wgmma would truncate float32), each thread a share, and meet on the stage's
//    `rounded` mbarrier before any of them multiplies it;
//  - one block an SM, each taking tiles blockIdx.x, blockIdx.x + gridDim.x, ... (TmaSchedule), the
//    stage ring running on from tile to tile: the producer copies the next tile's first stages
//    while the consumers store the last one's outputs.
// Stage s is used for the i-th time by the i-th pass of the ring: its `full` phase then has parity
// i % 2, and the producer waits for `empty`'s phase before it (the first pass waits for nothing).
#pragma once

#include <cuda.h>

#include <algorithm>
#include <cstdint>

#include "../../simt/hopper/bulk_copy.h"
#include "../../simt/hopper/bulk_tensor_copy.h"
#include "../../simt/hopper/mbarrier.h"
#include "../../simt/hopper/register_count.h"
#include "../../simt/simt.h"
#include "../launch.cuh"
#include "../mma.cuh"
#include "pixel_tile.cuh"
#include "problem.cuh"
#include "tma_operands.cuh"
#include "warp_rows_epilogue.cuh"
#include "warpgroup_mma.cuh"
#include "warpgroup_tile.cuh"

namespace convkernels::cuda::nhwc_igemm {

// Two consumer warpgroups of 64 rows by BlockN columns (warps 0-7: a warpgroup's first warp must
// be a multiple of 4), then the producer warpgroup, whose first thread copies. The producer
// releases registers to kProducerRegisters and the consumers claim kConsumerRegisters
// (setmaxnreg), within the block's 64K: the 128 accumulators of a 64x256 warpgroup tile outgrow
// the even share of 168 a thread.
template <int BlockN, int Stages>
struct TmaTileShape {
  using Consumers = WarpgroupTileShape<2, BlockN, Stages>;  // the stages' layout and the wgmma tiles
  static constexpr int kBlockM = Consumers::kBlockM, kBlockN = BlockN, kStages = Stages;
  static constexpr int kConsumerThreads = Consumers::kThreads, kConsumerWarps = kConsumerThreads / 32;
  static constexpr int kThreads = kConsumerThreads + 128;
  static constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;
  static_assert(128 * kProducerRegisters + kConsumerThreads * kConsumerRegisters <= 65536, "one block's registers");
  template <typename T>
  static constexpr int kSharedBytes = Consumers::kMainloopBytes + kConsumerWarps * WarpRows<BlockN, T>::kBytes;
};

// 128 x 256, 128 x 128 and 128 x 64 (launch_channels_last_igemm picks one by the group's outputs);
// 115 to 166 KB of shared memory in half types, to 165 KB in float32 (one block an SM).
using TmaWidestTile = TmaTileShape<256, 4>;
using TmaWideTile = TmaTileShape<128, 6>;
using TmaNarrowTile = TmaTileShape<64, 8>;

// Which tile of the GEMM a persistent block's i-th turn takes: tile t is column tile t % n_tiles
// of pixel box t / n_tiles % m_tiles of group t / (n_tiles m_tiles), so the blocks running at once
// share boxes of the input (in L2) across column tiles.
struct TmaSchedule {
  PixelTile box;
  int q_boxes, p_boxes;  // boxes along a row and along a column of the output
  int64_t m_tiles;       // boxes per group: q_boxes * p_boxes * boxes of images
  int n_tiles;           // column tiles per group
  int64_t tiles;         // all of them: groups * m_tiles * n_tiles
  int chunks;            // kChunkBytes pieces of a group's channels per tap (the last may be part padding)

  struct Tile {
    PixelBox pixels;
    int n0, group;
  };

  C10_HOST_DEVICE Tile tile(int64_t t, int block_n) const {
    const int64_t column_tile = t % n_tiles, pixel_tile = t / n_tiles % m_tiles, group = t / (n_tiles * m_tiles);
    const int64_t q_box = pixel_tile % q_boxes, p_box = pixel_tile / q_boxes % p_boxes;
    const int64_t image_box = pixel_tile / (int64_t{q_boxes} * p_boxes);
    return {{static_cast<int>(q_box * box.q), static_cast<int>(p_box * box.p), image_box * box.n, box},
            static_cast<int>(column_tile * block_n), static_cast<int>(group)};
  }
};

template <class Tile, typename T>
TmaSchedule tma_schedule(const NhwcConvProblem& p) {
  const auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  TmaSchedule s;
  s.box = choose_pixel_tile<Tile::kBlockM>(p);
  s.q_boxes = static_cast<int>(ceil_div(p.Q, s.box.q));
  s.p_boxes = static_cast<int>(ceil_div(p.P, s.box.p));
  s.m_tiles = s.q_boxes * int64_t{s.p_boxes} * ceil_div(p.N, s.box.n);
  s.n_tiles = static_cast<int>(ceil_div(p.k_per_group, Tile::kBlockN));
  s.tiles = s.m_tiles * s.n_tiles * p.groups;
  s.chunks = static_cast<int>(ceil_div(int64_t{p.c_per_group} * sizeof(T), kChunkBytes));
  return s;
}

// A position in the ring of stages: the slot, and the parity of its current use.
template <int kStages>
struct StageRing {
  int slot = 0;
  unsigned phase = 0;

  __device__ void advance() {
    if (++slot == kStages) {
      slot = 0;
      phase ^= 1;
    }
  }
};

// The producer: every stage of every tile the block takes, in order.
template <typename T, class Tile>
__device__ void copy_stages(const CUtensorMap* activations, const CUtensorMap* filters, const NhwcConvProblem& p,
                            const TmaSchedule& schedule, char* stages, uint64_t* full, uint64_t* empty) {
  using Consumers = typename Tile::Consumers;
  constexpr int kChunk = kChunkBytes / sizeof(T);
  const unsigned stage_bytes = (schedule.box.rows() + Tile::kBlockN) * kChunkBytes;
  StageRing<Tile::kStages> ring;
  for (int64_t t = blockIdx.x; t < schedule.tiles; t += gridDim.x) {
    const TmaSchedule::Tile tile = schedule.tile(t, Tile::kBlockN);
    const int w0 = tile.pixels.q0 * p.stride_w - p.pad_w, h0 = tile.pixels.p0 * p.stride_h - p.pad_h;
    const int image = static_cast<int>(tile.pixels.n0), k0 = tile.group * p.k_per_group + tile.n0;
    for (int r = 0; r < p.R; ++r) {
      for (int s = 0; s < p.S; ++s) {
        for (int chunk = 0; chunk < schedule.chunks; ++chunk) {
          simt::mbarrier_wait_parity(&empty[ring.slot], ring.phase ^ 1);
          simt::mbarrier_arrive_expect_tx(&full[ring.slot], stage_bytes);
          char* stage = stages + ring.slot * Consumers::kStageBytes;
          simt::bulk_tensor_copy<5>(stage, activations,
                                    {chunk * kChunk, tile.group, w0 + s * p.dil_w, h0 + r * p.dil_h, image},
                                    &full[ring.slot]);
          simt::bulk_tensor_copy<3>(stage + Consumers::kTileBytesA, filters, {chunk * kChunk, r * p.S + s, k0},
                                    &full[ring.slot]);
          ring.advance();
        }
      }
    }
  }
}

// A consumer thread's share of a landed stage (the box's rows of activations, then the filters'),
// rounded to TF32 in place: consecutive threads on consecutive 16-byte pieces.
template <class Tile>
__device__ void round_stage_to_tf32(char* stage, const TmaSchedule& schedule) {
  using Consumers = typename Tile::Consumers;
  constexpr int kPiecesPerRow = kChunkBytes / 16;
  const int a_pieces = schedule.box.rows() * kPiecesPerRow, pieces = a_pieces + Tile::kBlockN * kPiecesPerRow;
  for (int i = threadIdx.x; i < pieces; i += Tile::kConsumerThreads) {
    round_to_tf32_in_shared<16>(stage + (i < a_pieces ? 16 * i : Consumers::kTileBytesA + 16 * (i - a_pieces)));
  }
}

// A consumer thread: multiplies every stage of every tile the block takes, and stores the tiles.
template <typename T, class Tile>
__device__ void multiply_stages(const NhwcConvProblem& p, const TmaSchedule& schedule, const T* bias, T* out,
                                char* stages, T* warp_rows, uint64_t* full, uint64_t* empty, uint64_t* rounded) {
  using Consumers = typename Tile::Consumers;
  using Mma = WarpgroupMma<Consumers, T>;
  const int steps = p.R * p.S * schedule.chunks;  // at least one: the host sends no tapless GEMM here
  const int lane = threadIdx.x % 32;
  const auto release = [&](int slot) {
    if (lane == 0) simt::mbarrier_arrive(&empty[slot]);  // the warp's wgmmas have read the stage
  };
  StageRing<Tile::kStages> ring;
  for (int64_t t = blockIdx.x; t < schedule.tiles; t += gridDim.x) {
    const TmaSchedule::Tile tile = schedule.tile(t, Tile::kBlockN);
    Mma mma(threadIdx.x);
    int previous = 0;
    for (int step = 0; step < steps; ++step) {
      simt::mbarrier_wait_parity(&full[ring.slot], ring.phase);
      char* stage = stages + ring.slot * Consumers::kStageBytes;
      if constexpr (Mma::kRoundsStagesToTf32) {
        round_stage_to_tf32<Tile>(stage, schedule);
        simt::fence_proxy_async_shared();  // the rounded values, for wgmma's reads
        simt::mbarrier_arrive(&rounded[ring.slot]);
        simt::mbarrier_wait_parity(&rounded[ring.slot], ring.phase);
      }
      mma.multiply(stage, stage + Consumers::kTileBytesA);  // returns once the step before is done
      if (step > 0) release(previous);
      previous = ring.slot;
      ring.advance();
    }
    mma.finish();
    release(previous);
    store_warp_rows<Consumers>(p, mma, tile.pixels, bias, out, tile.group, tile.n0, warp_rows);
  }
}

// cp.async.bulk.tensor, mbarrier and wgmma need sm_90a: for older targets the kernel is an empty
// stub that the host never launches (takes_wgmma checks the device).
template <typename T, class Tile>
__global__ void __launch_bounds__(Tile::kThreads, 1)
    channels_last_tma_igemm_kernel(const __grid_constant__ CUtensorMap activations,
                                   const __grid_constant__ CUtensorMap filters, NhwcConvProblem p,
                                   TmaSchedule schedule, const T* __restrict__ bias, T* __restrict__ out) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  __trap();
#else
  __shared__ uint64_t full[Tile::kStages], empty[Tile::kStages], rounded[Tile::kStages];
  SIMT_DYNAMIC_SHARED(char, shared);
  if (threadIdx.x == 0) {
    for (int s = 0; s < Tile::kStages; ++s) {
      simt::mbarrier_init(&full[s], 1);                           // the producer's arrive, with the bytes
      simt::mbarrier_init(&empty[s], Tile::kConsumerWarps);       // every consumer warp's release
      simt::mbarrier_init(&rounded[s], Tile::kConsumerThreads);  // TF32: every consumer's share
    }
    simt::fence_mbarrier_init();  // seen by the tensor copies that complete on them
  }
  __syncthreads();
  char* const stages = shared;
  if (threadIdx.x >= Tile::kConsumerThreads) {
    simt::release_registers<Tile::kProducerRegisters>();
    if (threadIdx.x == Tile::kConsumerThreads) {
      copy_stages<T, Tile>(&activations, &filters, p, schedule, stages, full, empty);
    }
  } else {
    simt::claim_registers<Tile::kConsumerRegisters>();
    T* warp_rows = reinterpret_cast<T*>(shared + Tile::Consumers::kMainloopBytes) +
                   threadIdx.x / 32 * (WarpRows<Tile::kBlockN, T>::kBytes / sizeof(T));
    multiply_stages<T, Tile>(p, schedule, bias, out, stages, warp_rows, full, empty, rounded);
  }
#endif
}

// Whether the wgmma GEMMs of fprop and dgrad copy by TMA where they can (tma_igemm_applies), unless
// the environment has CONVKERNELS_TMA=0, which keeps their cp.async kernels (to compare the two on
// one GPU, and to test both in one process). Read at every call.
inline bool takes_tma() { return environment_allows("CONVKERNELS_TMA"); }

// Whether launch_channels_last_tma_igemm takes a problem (otherwise the cp.async kernels do):
// unpacked groups (a wgmma multiplies every column) whose channels are whole 16-byte pieces (the
// maps' strides), one tap a stage, at least one tap, strides a tensor copy's element strides can
// take (8 at most) and images counted in a copy's 32-bit coordinates.
inline bool tma_igemm_applies(const NhwcConvProblem& p) {
  return p.packed == 1 && p.taps_per_stage == 1 && p.R * p.S > 0 && p.stride_h <= 8 && p.stride_w <= 8 &&
         p.N < (int64_t{1} << 31);
}

// out = the problem's GEMM (+ bias, which may be nullptr) on Tile, for float16, bfloat16 or float32
// in TF32 on an sm_90a GPU; `in` and `filters` 16-byte aligned with c_per_group a multiple of 8
// (nhwc_igemm_passes.cu).
template <typename T, class Tile>
void launch_channels_last_tma_igemm(const NhwcConvProblem& p, const T* in, const T* filters, const T* bias, T* out,
                                    cudaStream_t stream) {
  static_assert(Tile::template kSharedBytes<T> <= 227 * 1024, "an sm_90 block's shared memory");
  const TmaSchedule schedule = tma_schedule<Tile, T>(p);
  const CUtensorMap activations = activation_map(p, in, schedule.box);
  const CUtensorMap filter_tiles = filter_map(p, filters, Tile::kBlockN);
  const int64_t blocks = std::min<int64_t>(schedule.tiles, simt::multiprocessor_count());
  launch_kernel(channels_last_tma_igemm_kernel<T, Tile>, dim3(static_cast<unsigned>(blocks)), dim3(Tile::kThreads),
                Tile::template kSharedBytes<T>, stream, activations, filter_tiles, p, schedule, bias, out);
}

}  // namespace convkernels::cuda::nhwc_igemm
