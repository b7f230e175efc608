// Tiled implicit GEMM: the block-level machinery shared by general_fprop.cuh, general_dgrad.cuh
// and general_wgrad.cuh.
//
// Each pass of a convolution is, per group, a GEMM  C[M x N] += A[M x K] * B[K x N]  whose operands
// are never materialised: a pass supplies one loader per operand that gathers the tile elements
// straight from the NCHW tensors (the im2col index math lives there) and an epilogue that scatters
// C back. A thread block computes a kBlockM x kBlockN tile of C and marches over K in steps of
// kBlockK:
//   - while the block multiplies the current A and B tiles out of shared memory, each thread holds
//     its share of the next tiles in registers and stores them into the other shared buffer
//     afterwards (double buffering: one barrier per step);
//   - each thread accumulates kThreadM x kThreadN elements of C in registers, by the math step
//     that the kernel's operand type selects (Accumulators below): float and double on CUDA cores
//     (CudaCoreAccumulators), float16, bfloat16 and Tf32 on tensor cores
//     (tensor_core_accumulators.cuh). A kernel's operand type is its element type, or Tf32 for
//     float32 where torch allows TF32 convolutions, chosen per call on the host
//     (with_operand_type). The math step also chooses the layout of the shared tiles
//     (operand_tile.cuh); the mainloop, the loaders and the epilogues are the same for all.
// Shared tiles are stored k-major (tile[k][m]), so that a warp's fragments are runs of a row. On
// CUDA cores a thread's sub-tile is made of 4-wide strips spread 4*kThreadsM (kThreadsN) apart,
// one outer product of an A column and a B row per k, so that the fragment reads of a warp are
// 16-byte vectors that cover contiguous shared memory.
#pragma once

#include <cstdint>
#include <type_traits>

#include <ATen/OpMathType.h>

#include "../conv_params.h"
#include "../simt/simt.h"
#include "operand_tile.cuh"
#include "tensor_core_accumulators.cuh"

namespace convkernels::cuda {

template <typename I>
C10_HOST_DEVICE constexpr I ceil_div(I a, I b) {
  return (a + b - 1) / b;
}

template <int BlockM, int BlockN, int BlockK, int ThreadM, int ThreadN>
struct TileShape {
  static constexpr int kBlockM = BlockM, kBlockN = BlockN, kBlockK = BlockK;
  static constexpr int kThreadM = ThreadM, kThreadN = ThreadN;
  static constexpr int kThreadsM = BlockM / ThreadM, kThreadsN = BlockN / ThreadN;
  static constexpr int kThreads = kThreadsM * kThreadsN;
  static_assert(ThreadM % 4 == 0 && ThreadN % 4 == 0, "sub-tiles are made of 4-wide strips");
  static_assert(BlockM % ThreadM == 0 && BlockN % ThreadN == 0, "threads must tile the block");

  // Position in the block tile of element i of a thread's sub-tile, for the thread at `lane` of
  // the kThreads{M,N} along that dimension.
  C10_HOST_DEVICE static constexpr int m_of(int lane, int i) {
    return i / 4 * (4 * kThreadsM) + lane * 4 + i % 4;
  }
  C10_HOST_DEVICE static constexpr int n_of(int lane, int j) {
    return j / 4 * (4 * kThreadsN) + lane * 4 + j % 4;
  }
};

// Dense problems: 256 threads, 8x4 outputs each. Problems whose GEMM N (channels per group) is
// small: 64 threads, 4x4 outputs each, so that a group of 4..16 channels wastes little of the tile.
using WideTile = TileShape<128, 64, 8, 8, 4>;
using NarrowTile = TileShape<64, 16, 8, 4, 4>;

// The 1x1 fast path (kPointwise loaders): input pixel (h, w) is output pixel (p, q). Besides a
// pointwise filter this needs P = H and Q = W, which a transposed convolution's output padding or
// a cropped grad_output can break.
inline bool maps_pixels_one_to_one(const ConvParams& p) {
  return p.is_pointwise() && p.P == p.H && p.Q == p.W;
}

inline bool prefers_narrow_tile(int64_t gemm_n) { return gemm_n <= NarrowTile::kBlockN; }

// Which elements of a kBlockK x kExtent operand tile a thread copies to shared memory, with the
// block's threads running along the operand's extent (M or N): the layout for an operand that is
// contiguous in global memory along M or N. Each thread owns one column x and a run of kPerThread
// consecutive k, which lets a loader step its (channel, r, s) decomposition instead of dividing.
template <class Tile, int kExtent>
struct ThreadsAlongX {
  static constexpr int kPerThread = kExtent * Tile::kBlockK / Tile::kThreads;
  static_assert(Tile::kThreads % kExtent == 0 && kPerThread >= 1, "a column per thread");

  int x, k_first;
  __device__ explicit ThreadsAlongX(int tid)
      : x(tid % kExtent), k_first(tid / kExtent * kPerThread) {}

  template <typename acc_t, class SharedTile>
  __device__ void store(const acc_t (&regs)[kPerThread], SharedTile& tile) const {
#pragma unroll
    for (int e = 0; e < kPerThread; ++e) tile.store(k_first + e, x, regs[e]);
  }
};

// The same with the threads running along k: the layout for an operand that is contiguous along
// K. Each thread owns one k and kPerThread columns, kThreads / kBlockK apart.
template <class Tile, int kExtent>
struct ThreadsAlongK {
  static constexpr int kPerThread = kExtent * Tile::kBlockK / Tile::kThreads;
  static constexpr int kColumnStep = Tile::kThreads / Tile::kBlockK;
  static_assert(Tile::kThreads % Tile::kBlockK == 0 && kPerThread >= 1, "a k per thread");

  int k, x_first;
  __device__ explicit ThreadsAlongK(int tid)
      : k(tid % Tile::kBlockK), x_first(tid / Tile::kBlockK) {}
  __device__ int x(int e) const { return x_first + e * kColumnStep; }

  template <typename acc_t, class SharedTile>
  __device__ void store(const acc_t (&regs)[kPerThread], SharedTile& tile) const {
#pragma unroll
    for (int e = 0; e < kPerThread; ++e) tile.store(k, x(e), regs[e]);
  }
};

// The CUDA-core math step: per-thread accumulators of the block tile, the thread's place in the
// block, and one outer product per k. Shared rows are padded by 4 elements: the k-strided stores
// of ThreadsAlongK then fall in distinct banks, and every row still starts 16-byte aligned.
template <class Tile_, typename acc_t_>
struct CudaCoreAccumulators {
  using Tile = Tile_;
  using acc_t = acc_t_;
  template <int kExtent>
  using SharedTile = SharedOperandTile<acc_t, 1, 4, Tile::kBlockK, kExtent>;

  acc_t c[Tile::kThreadM][Tile::kThreadN];
  int lane_m, lane_n;

  __device__ explicit CudaCoreAccumulators(int tid)
      : lane_m(tid % Tile::kThreadsM), lane_n(tid / Tile::kThreadsM) {
#pragma unroll
    for (int i = 0; i < Tile::kThreadM; ++i) {
#pragma unroll
      for (int j = 0; j < Tile::kThreadN; ++j) c[i][j] = acc_t(0);
    }
  }
  __device__ int m(int i) const { return Tile::m_of(lane_m, i); }
  __device__ int n(int j) const { return Tile::n_of(lane_n, j); }

  // C += A * B for one kBlockK slice held in shared memory.
  template <class TileA, class TileB>
  __device__ __forceinline__ void multiply(const TileA& a, const TileB& b) {
    simt::note_fma<acc_t>(Tile::kBlockK * Tile::kThreadM * Tile::kThreadN);
#pragma unroll
    for (int k = 0; k < Tile::kBlockK; ++k) {
      acc_t a_frag[Tile::kThreadM], b_frag[Tile::kThreadN];
#pragma unroll
      for (int i = 0; i < Tile::kThreadM; ++i) a_frag[i] = a.at(k, m(i));
#pragma unroll
      for (int j = 0; j < Tile::kThreadN; ++j) b_frag[j] = b.at(k, n(j));
#pragma unroll
      for (int i = 0; i < Tile::kThreadM; ++i) {
#pragma unroll
        for (int j = 0; j < Tile::kThreadN; ++j) c[i][j] += a_frag[i] * b_frag[j];
      }
    }
  }
};

// The math step for operand type Op.
template <class Tile, typename Op>
using Accumulators =
    std::conditional_t<has_mma_m16n8k8<Op>, TensorCoreAccumulators<Tile, Op>,
                       CudaCoreAccumulators<Tile, at::opmath_type<Op>>>;

// launch(Op{}) for the operand type that the implicit GEMMs of element type T multiply in: Tf32
// for float32 when `allow_tf32`, else T itself (float64 never runs in TF32).
template <typename T, class Launch>
void with_operand_type(bool allow_tf32, Launch&& launch) {
  if constexpr (std::is_same_v<T, float>) {
    if (allow_tf32) return launch(Tf32{});
  }
  launch(T{});
}

// Calls launch.template operator()<Op, Tile, kPointwise>() with the operand type, tile and 1x1 path
// that a pass over T whose GEMM N is gemm_n takes.
template <typename T, class Launch>
void with_gemm_config(const ConvParams& p, int64_t gemm_n, bool allow_tf32, Launch&& launch) {
  with_operand_type<T>(allow_tf32, [&](auto operand) {
    using Op = decltype(operand);
    if (prefers_narrow_tile(gemm_n)) {
      launch.template operator()<Op, NarrowTile, false>();
    } else if (maps_pixels_one_to_one(p)) {
      launch.template operator()<Op, WideTile, true>();
    } else {
      launch.template operator()<Op, WideTile, false>();
    }
  });
}

// C += A[:, k_begin:k_end] * B[k_begin:k_end, :] for the block's tile. Loaders provide
//   using Slice = ThreadsAlong{X,K}<Tile, kBlock{M,N}>;  Slice slice;
//   void load(const ConvParams&, int64_t k0, acc_t (&regs)[Slice::kPerThread]);
// which fetches the thread's elements of the tile at k0..k0+kBlockK-1 (zeros outside the problem).
// It is called for k0 = k_begin, k_begin + kBlockK, ... in turn, so a loader may step its
// coordinates from one call to the next instead of deriving them from k0.
// k_begin must be the same for the whole block; every thread of the block must call this.
template <class LoaderA, class LoaderB, class Acc>
__device__ __forceinline__ void gemm_mainloop(const ConvParams& p, LoaderA& a, LoaderB& b,
                                              int64_t k_begin, int64_t k_end, Acc& acc) {
  using Tile = typename Acc::Tile;
  using acc_t = typename Acc::acc_t;
  constexpr int BK = Tile::kBlockK;
  __shared__ typename Acc::template SharedTile<Tile::kBlockM> a_tiles[2];
  __shared__ typename Acc::template SharedTile<Tile::kBlockN> b_tiles[2];

  // Every load writes all of them; the braces only spare g++ (the emulator build) a false
  // "may be used uninitialized".
  acc_t a_regs[LoaderA::Slice::kPerThread] = {};
  acc_t b_regs[LoaderB::Slice::kPerThread] = {};
  const int64_t steps = k_end > k_begin ? ceil_div<int64_t>(k_end - k_begin, BK) : 0;
  if (steps > 0) {
    a.load(p, k_begin, a_regs);
    b.load(p, k_begin, b_regs);
    a.slice.store(a_regs, a_tiles[0]);
    b.slice.store(b_regs, b_tiles[0]);
  }
  __syncthreads();

  for (int64_t step = 0; step < steps; ++step) {
    const int buffer = static_cast<int>(step & 1);
    const bool has_next = step + 1 < steps;
    if (has_next) {  // global loads in flight while the block computes
      a.load(p, k_begin + (step + 1) * BK, a_regs);
      b.load(p, k_begin + (step + 1) * BK, b_regs);
    }
    acc.multiply(a_tiles[buffer], b_tiles[buffer]);
    // The other buffer was last read before the previous barrier: safe to overwrite.
    if (has_next) {
      a.slice.store(a_regs, a_tiles[buffer ^ 1]);
      b.slice.store(b_regs, b_tiles[buffer ^ 1]);
    }
    __syncthreads();
  }
}

}  // namespace convkernels::cuda
