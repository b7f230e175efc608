// One warp-wide tensor-core multiply-accumulate, D[16 x 8] += A[16 x 8] * B[8 x 8], with float16
// or bfloat16 operands and float accumulators: PTX's mma.sync.aligned.m16n8k8.row.col (sm_80+).
//
// The operands live in the registers of the warp's 32 lanes. With g = lane / 4 and t = lane % 4
// (PTX ISA, "Matrix Fragments for mma.m16n8k8", .f16/.bf16), a lane holds
//   a[0] = {A[g][2t], A[g][2t+1]},  a[1] = {A[g+8][2t], A[g+8][2t+1]}   (low half first)
//   b    = {B[2t][g], B[2t+1][g]}
//   d    = {D[g][2t], D[g][2t+1], D[g+8][2t], D[g+8][2t+1]}.
// Under nvcc this is the instruction. Under the SIMT emulator the same function gathers, with warp
// shuffles, the A rows and B columns its four D elements need from the lanes that hold them, so
// the emulator runs the fragment layout the instruction expects, not a stand-in for it.
#pragma once

#include <cstdint>
#include <type_traits>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "../simt/simt.h"

namespace convkernels::cuda {

// Element types the instruction multiplies.
template <typename T>
constexpr bool has_mma_m16n8k8 = std::is_same_v<T, c10::Half> || std::is_same_v<T, c10::BFloat16>;

// The emulator, and GPUs older than sm_80 (which lack the bfloat16 form), run the shuffle twin:
// correct everywhere, fast only as the instruction.
#if defined(SIMT_EMULATOR) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800)
#define CONVKERNELS_MMA_TWIN 1
#endif

#if defined(CONVKERNELS_MMA_TWIN)
// The two elements of a 32-bit fragment register, low half first, as floats.
template <typename T>
__device__ __forceinline__ void unpack_pair(uint32_t bits, float (&pair)[2]) {
  pair[0] = static_cast<float>(T(static_cast<uint16_t>(bits & 0xffffu), T::from_bits()));
  pair[1] = static_cast<float>(T(static_cast<uint16_t>(bits >> 16), T::from_bits()));
}
#endif

// d += a * b for the warp's fragments; every lane of the warp must call it (with the same T).
template <typename T>
__device__ __forceinline__ void mma_m16n8k8(float (&d)[4], const uint32_t (&a)[2], uint32_t b) {
  static_assert(has_mma_m16n8k8<T>, "mma.m16n8k8 multiplies float16 or bfloat16");
#if defined(CONVKERNELS_MMA_TWIN)
  const unsigned lane =
      ((threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x) % warpSize;
  const int g = static_cast<int>(lane / 4), t = static_cast<int>(lane % 4);
  // k = 2q, 2q+1 of A's rows g and g+8 sit in lane 4g+q; of B's columns 2t and 2t+1 in lanes
  // 4*(2t)+q and 4*(2t+1)+q. Every lane takes part in every shuffle.
  for (int q = 0; q < 4; ++q) {
    const unsigned long long a_rows =
        __shfl_sync(0xffffffffu, static_cast<unsigned long long>(a[1]) << 32 | a[0], 4 * g + q);
    const uint32_t b_col0 = __shfl_sync(0xffffffffu, b, 8 * t + q);
    const uint32_t b_col1 = __shfl_sync(0xffffffffu, b, 8 * t + 4 + q);
    float row_g[2], row_g8[2], col0[2], col1[2];
    unpack_pair<T>(static_cast<uint32_t>(a_rows), row_g);
    unpack_pair<T>(static_cast<uint32_t>(a_rows >> 32), row_g8);
    unpack_pair<T>(b_col0, col0);
    unpack_pair<T>(b_col1, col1);
    for (int e = 0; e < 2; ++e) {  // products of 16-bit floats are exact in float
      d[0] += row_g[e] * col0[e];
      d[1] += row_g[e] * col1[e];
      d[2] += row_g8[e] * col0[e];
      d[3] += row_g8[e] * col1[e];
    }
  }
#else
  if constexpr (std::is_same_v<T, c10::Half>) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b));
  } else {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b));
  }
#endif
}

}  // namespace convkernels::cuda
