// mma.sync m16n8k4 (tf32), m16n8k8 (f16, bf16, tf32) and m16n8k16 (f16, bf16): one warp multiplies fragments that
// the host packed from whole matrices, and stores each lane's accumulators.
#pragma once

#include <cstdint>

#include "mma.h"
#include "simt.h"

// Planted errors, to show that the layout checks fail when a fragment is wrong.
enum class MmaPlant { none, swap_a, swap_b, swap_c };

// Swaps registers 0 and 1 of a fragment, or the two halves of a lone register.
template <int kRegisters>
__device__ void swap_first_registers(uint32_t (&fragment)[kRegisters]) {
  if (kRegisters == 1) {
    fragment[0] = fragment[0] >> 16 | fragment[0] << 16;
  } else {
    const uint32_t first = fragment[0];
    fragment[0] = fragment[1 % kRegisters];
    fragment[1 % kRegisters] = first;
  }
}

// a[kA * l + r], b[kB * l + r]: register r of lane l; c and d: lane l's four accumulators at 4l.
template <simt::MmaOperand kType, int kK>
__global__ void mma_kernel(const uint32_t* a, const uint32_t* b, const float* c, float* d, MmaPlant plant) {
  using Fragments = simt::MmaFragments<kType, kK>;
  constexpr int kA = Fragments::kRegistersA, kB = Fragments::kRegistersB;
  const int lane = threadIdx.x;
  uint32_t a_frag[kA], b_frag[kB];
  float acc[4];
  for (int r = 0; r < kA; ++r) a_frag[r] = a[kA * lane + r];
  for (int r = 0; r < kB; ++r) b_frag[r] = b[kB * lane + r];
  for (int r = 0; r < 4; ++r) acc[r] = c[4 * lane + r];
  if (plant == MmaPlant::swap_a) swap_first_registers(a_frag);
  if (plant == MmaPlant::swap_b) swap_first_registers(b_frag);
  if constexpr (kK == 16) {
    simt::mma_m16n8k16<kType>(acc, a_frag, b_frag);
  } else if constexpr (kK == 8) {
    simt::mma_m16n8k8<kType>(acc, a_frag, b_frag);
  } else {
    simt::mma_m16n8k4<kType>(acc, a_frag, b_frag);
  }
  if (plant == MmaPlant::swap_c) {
    const float first = acc[0];
    acc[0] = acc[1];
    acc[1] = first;
  }
  for (int r = 0; r < 4; ++r) d[4 * lane + r] = acc[r];
}

template <simt::MmaOperand kType, int kK>
void multiply_fragments(const uint32_t* a, const uint32_t* b, const float* c, float* d, MmaPlant plant,
                        cudaStream_t stream) {
  simt::launch(mma_kernel<kType, kK>, dim3(1), dim3(32), 0, stream, a, b, c, d, plant);
}
