// WarpMma: a warp's tile of the block's accumulators (WarpTile) and one stage's multiply on tensor
// cores: fragments loaded from the swizzled shared tiles with ldmatrix, multiplied with mma.sync.
//
// Two chunks of k (32 bytes) are one MMA k-step for every element type: m16n8k16 for float16 and
// bfloat16, m16n8k8 in TF32 for float32 (whose operands are rounded to TF32 in registers). With
// kThreeTf32, float32 operands are split into two TF32 numbers and multiplied in three products
// (big*big + big*small + small*big): float32-level error on tensor cores. Their
// fragments have the same shape in 16-byte chunks, so one ldmatrix.x4 gives an m16 tile of A
// (matrices: rows 0-7 and 8-15 at chunk k, then at chunk k+1) and another gives two n8 tiles of B
// (rows 0-7 at chunks k and k+1, then rows 8-15). Packed groups (packed_groups.cuh) skip the
// chunks outside an n8 tile's group: a k-step of one chunk is an m16n8k8 (m16n8k4 in TF32); where
// groups share a chunk, the A values of the other groups' channels are zeroed first.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "../../simt/ldmatrix.h"
#include "../../simt/mma.h"
#include "../mma.cuh"
#include "packed_groups.cuh"
#include "tile_shape.cuh"
#include "warp_tile.cuh"

namespace convkernels::cuda::nhwc_igemm {

// Element types the channels_last tensor-core GEMMs store (float32 multiplies in TF32).
template <typename T>
constexpr bool is_tensor_core_element =
    std::is_same_v<T, c10::Half> || std::is_same_v<T, c10::BFloat16> || std::is_same_v<T, float>;

template <class Tile, typename T, bool kThreeTf32 = false>
struct WarpMma : WarpTile<Tile, float> {
  static_assert(is_tensor_core_element<T>, "float16, bfloat16 or float32 (in TF32)");
  static_assert(!kThreeTf32 || std::is_same_v<T, float>, "3xTF32 splits float32 operands");
  using Base = WarpTile<Tile, float>;
  using Base::acc, Base::lane, Base::m0, Base::n0, Base::kTilesM, Base::kTilesN;
  static constexpr int kElementsPerChunk = 16 / sizeof(T);

  __device__ explicit WarpMma(int tid) : Base(tid) {}

  // acc += A * B over one stage: `a` and `b` are the stage's swizzled shared tiles, of which each
  // n8 tile takes the chunks `chunks` gives it (packed_groups.cuh).
  template <class Chunks = EveryChunk>
  __device__ __forceinline__ void multiply(const char* a, const char* b, const Chunks& chunks = {}) {
#pragma unroll
    for (int k = 0; k < Tile::kChunksK; k += 2) {
      if (!takes_any(chunks, k)) continue;
      Fragment<4> a_frag[kTilesM];
      Fragment<2> b_frag[kTilesN]{};  // packed: loaded only for pairs of n8 tiles that take the k-step
#pragma unroll
      for (int i = 0; i < kTilesM; ++i) {
        uint32_t rows[4];
        simt::ldmatrix<4>(rows, a + swizzled_chunk(m0 + 16 * i + lane % 16, k + lane / 16));
        a_frag[i] = operand(rows);
      }
#pragma unroll
      for (int j = 0; j < kTilesN; j += 2) {
        if (!takes_step(chunks, j, k) && !takes_step(chunks, j + 1, k)) continue;
        uint32_t pair[4];
        simt::ldmatrix<4>(pair, b + swizzled_chunk(n0 + 8 * j + lane / 16 * 8 + lane % 8, k + lane / 8 % 2));
        b_frag[j] = operand<2>({pair[0], pair[1]});
        b_frag[j + 1] = operand<2>({pair[2], pair[3]});
      }
#pragma unroll
      for (int i = 0; i < kTilesM; ++i) {
#pragma unroll
        for (int j = 0; j < kTilesN; ++j) {
          if constexpr (Chunks::kEvery) {
            mma(acc[i][j], a_frag[i], b_frag[j]);
          } else {
            // Registers 0-1 of an A fragment hold chunk k, registers 2-3 chunk k + 1.
            const bool low = chunks.takes(j, k * kElementsPerChunk);
            const bool high = chunks.takes(j, (k + 1) * kElementsPerChunk);
            if (!low && !high) continue;
            const Fragment<4> a = chunks.shares_chunks() ? own_group_part(a_frag[i], chunks, j, k) : a_frag[i];
            if (low && high) {
              mma(acc[i][j], a, b_frag[j]);
            } else {
              mma_one_chunk(acc[i][j], a, b_frag[j], low);
            }
          }
        }
      }
    }
  }

 protected:  // TransposedWarpMma (transposed_warp_mma.cuh) rounds and multiplies alike
  // A fragment as the tensor cores multiply it: its registers (float32 rounded to TF32, cvt.rna,
  // as the generation-1 GEMMs round theirs), and for 3xTF32 also what that rounding left, rounded
  // to TF32 in turn: x = big + small up to float32's last bits.
  template <int kRegisters>
  struct Rounded {
    uint32_t big[kRegisters];
  };
  template <int kRegisters>
  struct Split {
    uint32_t big[kRegisters], small[kRegisters];
  };
  template <int kRegisters>
  using Fragment = std::conditional_t<kThreeTf32, Split<kRegisters>, Rounded<kRegisters>>;

  template <int kRegisters>
  __device__ __forceinline__ static Fragment<kRegisters> operand(const uint32_t (&registers)[kRegisters]) {
    Fragment<kRegisters> fragment;
#pragma unroll
    for (int r = 0; r < kRegisters; ++r) {
      if constexpr (std::is_same_v<T, float>) {
        float value;
        std::memcpy(&value, &registers[r], sizeof value);
        const Tf32 big(value);
        fragment.big[r] = big.bits;
        if constexpr (kThreeTf32) fragment.small[r] = Tf32(value - static_cast<float>(big)).bits;
      } else {
        fragment.big[r] = registers[r];
      }
    }
    return fragment;
  }

  // Whether n8 tile j takes chunk k or k + 1.
  template <class Chunks>
  __device__ __forceinline__ static bool takes_step(const Chunks& chunks, int j, int k) {
    return chunks.takes(j, k * kElementsPerChunk) || chunks.takes(j, (k + 1) * kElementsPerChunk);
  }

  // Whether some n8 tile of the warp takes chunk k or k + 1 (no ldmatrix for a k-step none does).
  template <class Chunks>
  __device__ __forceinline__ static bool takes_any(const Chunks& chunks, int k) {
    bool any = false;
#pragma unroll
    for (int j = 0; j < kTilesN; ++j) any |= takes_step(chunks, j, k);
    return any;
  }

  // The A fragment of k-step k with the values of channels outside n8 tile j's group zeroed, for
  // groups that share chunks: register r of a lane holds chunk k + r / 2's channel lane % 4 in TF32,
  // channels 2 * (lane % 4) and the next in half types (a pair never split between groups).
  template <class Chunks>
  __device__ __forceinline__ Fragment<4> own_group_part(const Fragment<4>& a, const Chunks& chunks, int j,
                                                        int k) const {
    constexpr int kPerRegister = 4 / static_cast<int>(sizeof(T));
    Fragment<4> own = a;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const bool mine = chunks.owns(j, (k + r / 2) * kElementsPerChunk + lane % 4 * kPerRegister);
      own.big[r] = mine ? a.big[r] : 0u;
      if constexpr (kThreeTf32) own.small[r] = mine ? a.small[r] : 0u;
    }
    return own;
  }

  // d += the product over one chunk of the k-step: chunk k if `low`, else k + 1. Registers 0-1 of
  // A and 0 of B hold chunk k, 2-3 and 1 chunk k + 1, and they are the fragments of the MMA of half
  // the k-step on that chunk alone: m16n8k8 for half types, m16n8k4 in TF32. Half the tensor-core
  // work of the whole k-step on zeros.
  __device__ __forceinline__ static void mma_one_chunk(float (&d)[4], const Fragment<4>& a, const Fragment<2>& b,
                                                       bool low) {
    const auto multiply_chunk = [low, &d](const uint32_t (&a_regs)[4], const uint32_t (&b_regs)[2]) {
      const uint32_t a_chunk[2] = {low ? a_regs[0] : a_regs[2], low ? a_regs[1] : a_regs[3]};
      const uint32_t b_chunk[1] = {low ? b_regs[0] : b_regs[1]};
      if constexpr (std::is_same_v<T, float>) {
        simt::mma_m16n8k4<simt::MmaOperand::tf32>(d, a_chunk, b_chunk);
      } else {
        simt::mma_m16n8k8<mma_operand<T>>(d, a_chunk, b_chunk);
      }
    };
    if constexpr (kThreeTf32) {  // the small products first, as in mma()
      multiply_chunk(a.small, b.big);
      multiply_chunk(a.big, b.small);
    }
    multiply_chunk(a.big, b.big);
  }

  __device__ __forceinline__ static void mma(float (&d)[4], const Fragment<4>& a, const Fragment<2>& b) {
    if constexpr (kThreeTf32) {  // the small products first, so that they are not lost to the big one
      simt::mma_m16n8k8<simt::MmaOperand::tf32>(d, a.small, b.big);
      simt::mma_m16n8k8<simt::MmaOperand::tf32>(d, a.big, b.small);
      simt::mma_m16n8k8<simt::MmaOperand::tf32>(d, a.big, b.big);
    } else if constexpr (std::is_same_v<T, float>) {
      simt::mma_m16n8k8<simt::MmaOperand::tf32>(d, a.big, b.big);
    } else {
      simt::mma_m16n8k16<mma_operand<T>>(d, a.big, b.big);
    }
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
