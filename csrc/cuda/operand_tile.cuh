// One shared-memory buffer of an implicit-GEMM operand tile (implicit_gemm.cuh): kDepth values of
// k for each of kExtent columns (m or n), stored k-major so that a fragment of a warp is a run of
// columns. kPack consecutive k of a column sit side by side in one word (Pack), which is how the
// tensor cores take them (mma.cuh: two 16-bit k, or one TF32, per 32-bit register); kPack = 1
// is also the plain tile[k][x] of the CUDA-core path. Each row of Packs is padded by kPad to spread the banks (see
// the math steps that choose it).
#pragma once

#include <cstdint>
#include <cstring>

#include "../simt/simt.h"

namespace convkernels::cuda {

template <typename E, int kPack, int kPad, int kDepth, int kExtent>
struct SharedOperandTile {
  static_assert(kDepth % kPack == 0, "whole packs of k");
  struct alignas(sizeof(E) * kPack) Pack {
    E k[kPack];
  };
  alignas(16) Pack rows[kDepth / kPack][kExtent + kPad];

  template <typename V>
  __device__ void store(int k, int x, V value) {
    simt::st_shared(&rows[k / kPack][x].k[k % kPack], static_cast<E>(value));
  }
  __device__ E at(int k, int x) const { return simt::ld_shared(&rows[k / kPack][x].k[k % kPack]); }

  // The 32-bit word holding k = kPack*row .. kPack*row + kPack-1 of column x, as a fragment
  // register (lowest k in the low bits).
  __device__ uint32_t word(int row, int x) const {
    static_assert(sizeof(Pack) == sizeof(uint32_t), "a pack fills one 32-bit register");
    const Pack pack = simt::ld_shared(&rows[row][x]);
    uint32_t bits;
    std::memcpy(&bits, &pack, sizeof bits);
    return bits;
  }
};

}  // namespace convkernels::cuda
