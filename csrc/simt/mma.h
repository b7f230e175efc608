// One warp-wide tensor-core multiply-accumulate with float accumulators, PTX's
// mma.sync.aligned.m16n8k{4,8,16}.row.col.f32.{f16,bf16,tf32}.{...}.f32 (sm_80+), written once for
// nvcc and the emulator:
//   simt::mma_m16n8k4<kType>(d, a, b)    D[16 x 8] += A[16 x 4] B[4 x 8]     tf32
//   simt::mma_m16n8k8<kType>(d, a, b)    D[16 x 8] += A[16 x 8] B[8 x 8]     f16, bf16, tf32
//   simt::mma_m16n8k16<kType>(d, a, b)   D[16 x 8] += A[16 x 16] B[16 x 8]   f16, bf16
// Every lane of the warp calls it with the same kType.
//
// The operands live in the 32-bit registers of the lanes. With g = lane / 4 and t = lane % 4
// (PTX ISA, "Matrix Fragments for mma.m16n8k4", "... mma.m16n8k8" and "... mma.m16n8k16"), a register packs
// kPack = 2 f16/bf16 (lower k in the low half) or 1 tf32 elements along k, and the lane's k fill
// kSlots = K / (4 kPack) registers per row. Slot s covers k = kPack (t + 4s) .. kPack (t + 4s) +
// kPack - 1. A's registers are a[2s] (row g) and a[2s + 1] (row g + 8), B's are b[s] (column g),
// and d = {D[g][2t], D[g][2t + 1], D[g + 8][2t], D[g + 8][2t + 1]}.
//
// The twin (the emulator, and GPUs before sm_80 that lack the bf16 and tf32 forms) gathers with
// warp shuffles the A rows and B columns its four D elements need from the lanes that hold them,
// so it runs the fragment layout the instruction expects, not a stand-in for it.
#pragma once

#include <cstdint>
#include <cstring>

#include "simt.h"

#if defined(SIMT_EMULATOR) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800)
#define SIMT_MMA_TWIN 1
#endif

#if defined(SIMT_EMULATOR)
#include "instrument.h"
#endif

namespace simt {

enum class MmaOperand { f16, bf16, tf32 };

// The registers of one lane for mma.m16n8kK on operands of kType (see the header comment).
template <MmaOperand kType, int kK>
struct MmaFragments {
  static constexpr int kPack = kType == MmaOperand::tf32 ? 1 : 2;
  static constexpr int kSlots = kK / (4 * kPack);
  static constexpr int kRegistersA = 2 * kSlots, kRegistersB = kSlots;
};

namespace detail {

#if defined(SIMT_MMA_TWIN)
// Lane `source`'s copy of a fragment, two registers per shuffle.
template <int kRegisters>
__device__ __forceinline__ void shuffle_fragment(const uint32_t (&mine)[kRegisters], int source,
                                                 uint32_t (&theirs)[kRegisters]) {
  for (int r = 0; r < kRegisters; r += 2) {
    if (r + 1 < kRegisters) {
      const unsigned long long pair =
          __shfl_sync(0xffffffffu, static_cast<unsigned long long>(mine[r + 1]) << 32 | mine[r], source);
      theirs[r] = static_cast<uint32_t>(pair);
      theirs[r + 1] = static_cast<uint32_t>(pair >> 32);
    } else {
      theirs[r] = __shfl_sync(0xffffffffu, mine[r], source);
    }
  }
}

// Element e (lowest k first) of a fragment register, as the tensor core reads it.
template <MmaOperand kType>
__device__ __forceinline__ float mma_element(uint32_t reg, int e) {
  if constexpr (kType == MmaOperand::f16) {
    __half_raw raw;
    raw.x = static_cast<unsigned short>(reg >> (16 * e));
    return __half2float(__half(raw));
  } else if constexpr (kType == MmaOperand::bf16) {
    __nv_bfloat16_raw raw;
    raw.x = static_cast<unsigned short>(reg >> (16 * e));
    return __bfloat162float(__nv_bfloat16(raw));
  } else {
    const uint32_t tf32_bits = reg & 0xffffe000u;  // a tf32 operand is the top 19 bits of its register
    float value;
    std::memcpy(&value, &tf32_bits, sizeof value);
    return value;
  }
}

template <MmaOperand kType, int kK>
__device__ __forceinline__ void mma_twin(float (&d)[4], const uint32_t (&a)[MmaFragments<kType, kK>::kRegistersA],
                                         const uint32_t (&b)[MmaFragments<kType, kK>::kRegistersB]) {
  using Fragments = MmaFragments<kType, kK>;
  const unsigned lane = ((threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x) % warpSize;
  const int g = static_cast<int>(lane / 4), t = static_cast<int>(lane % 4);
#if defined(SIMT_EMULATOR)
  if (lane == 0) note_math(kK == 16 ? MathOp::mma_16816 : kK == 8 ? MathOp::mma_1688 : MathOp::mma_1684, 1);
#endif
  // A row r of A and a column n of B are spread over lanes 4r+q and 4n+q, q < 4, and the lanes
  // with the same q hold the same k: gather A's rows g and g+8 from lane 4g+q and B's columns 2t
  // and 2t+1 from lanes 4*(2t)+q and 4*(2t+1)+q. Every lane takes part in every shuffle.
  for (int q = 0; q < 4; ++q) {
    uint32_t rows[Fragments::kRegistersA], col0[Fragments::kRegistersB], col1[Fragments::kRegistersB];
    shuffle_fragment(a, 4 * g + q, rows);
    shuffle_fragment(b, 8 * t + q, col0);
    shuffle_fragment(b, 8 * t + 4 + q, col1);
    for (int s = 0; s < Fragments::kSlots; ++s) {
      for (int e = 0; e < Fragments::kPack; ++e) {  // products of these operands are exact in float
        const float row_g = mma_element<kType>(rows[2 * s], e), row_g8 = mma_element<kType>(rows[2 * s + 1], e);
        const float b0 = mma_element<kType>(col0[s], e), b1 = mma_element<kType>(col1[s], e);
        d[0] += row_g * b0;
        d[1] += row_g * b1;
        d[2] += row_g8 * b0;
        d[3] += row_g8 * b1;
      }
    }
  }
}
#endif

}  // namespace detail

// d += a * b, the m16n8k4 shape (tf32 only): A has 2 registers, B 1.
template <MmaOperand kType>
__device__ __forceinline__ void mma_m16n8k4(float (&d)[4], const uint32_t (&a)[2], const uint32_t (&b)[1]) {
  static_assert(kType == MmaOperand::tf32, "mma.m16n8k4 multiplies tf32 (its f16 form is another shape)");
#if defined(SIMT_MMA_TWIN)
  detail::mma_twin<kType, 4>(d, a, b);
#else
  asm("mma.sync.aligned.m16n8k4.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(b[0]));
#endif
}

// d += a * b, the m16n8k8 shape: A has 2 (f16, bf16) or 4 (tf32) registers, B 1 or 2.
template <MmaOperand kType>
__device__ __forceinline__ void mma_m16n8k8(float (&d)[4], const uint32_t (&a)[MmaFragments<kType, 8>::kRegistersA],
                                            const uint32_t (&b)[MmaFragments<kType, 8>::kRegistersB]) {
#if defined(SIMT_MMA_TWIN)
  detail::mma_twin<kType, 8>(d, a, b);
#else
  if constexpr (kType == MmaOperand::f16) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(b[0]));
  } else if constexpr (kType == MmaOperand::bf16) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(b[0]));
  } else {
    asm(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#endif
}

// d += a * b, the m16n8k16 shape: A has 4 registers, B 2 (f16 and bf16 only).
template <MmaOperand kType>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  static_assert(kType != MmaOperand::tf32, "mma.m16n8k16 multiplies f16 or bf16; tf32 takes m16n8k8");
#if defined(SIMT_MMA_TWIN)
  detail::mma_twin<kType, 16>(d, a, b);
#else
  if constexpr (kType == MmaOperand::f16) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#endif
}

}  // namespace simt
