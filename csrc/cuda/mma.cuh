// One warp-wide tensor-core multiply-accumulate, D[16 x 8] += A[16 x 8] * B[8 x 8], with float16,
// bfloat16 or TF32 operands and float accumulators: PTX's mma.sync.aligned.m16n8k8.row.col
// (sm_80+), for the kernels' element types. The instruction, its fragment layout and its emulator
// twin are simt::mma_m16n8k8 (simt/mma.h); this header maps c10's types onto it and holds TF32.
//
// With g = lane / 4 and t = lane % 4, a lane holds two k of each of A's rows g and g+8 and of B's
// column g, and d = {D[g][2t], D[g][2t+1], D[g+8][2t], D[g+8][2t+1]}. A register packs
// kPack = 4 / sizeof(T) k (lowest k in the low bits), so a lane's k take kSlots = 2 / kPack
// registers per row, and slot s holds k = kPack*(t + 4s) .. kPack*(t + 4s) + kPack-1. A's
// registers are a[2s] (row g) and a[2s+1] (row g+8), B's are b[s]:
//   .f16/.bf16: a = {A[g][2t, 2t+1]}, {A[g+8][2t, 2t+1]};            b = {B[2t, 2t+1][g]}
//   .tf32:      a = A[g][t], A[g+8][t], A[g][t+4], A[g+8][t+4];       b = B[t][g], B[t+4][g]
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "../simt/mma.h"

namespace convkernels::cuda {

// A float32 rounded to TF32 (float32's exponent, 10 explicit mantissa bits): the operand type of
// float32 GEMMs on tensor cores. Rounding is to nearest, ties away from zero: cvt.rna.tf32.f32 on
// the GPU, the same rounding in portable code under the twin.
struct Tf32 {
  uint32_t bits;  // the TF32 number in the high 19 bits of a float32, as the tensor cores read it

  Tf32() = default;
  __device__ explicit Tf32(float value) : bits(rounded_bits(value)) {}
  // The TF32 value; for the twin, whose rounding zeroes the 13 low bits.
  __device__ explicit operator float() const {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }

 private:
  __device__ static uint32_t rounded_bits(float value) {
#if defined(SIMT_MMA_TWIN)
    if (value != value) return 0x7fffe000u;  // NaN: one that the truncation below keeps a NaN
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    // Half a TF32 ulp added to the magnitude, then truncated: ties go away from zero, and values
    // past the largest TF32 number carry into the exponent and become infinity.
    return (bits + 0x1000u) & 0xffffe000u;
#else
    uint32_t bits;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(bits) : "f"(value));
    return bits;
#endif
  }
};

// Rounds the float32 values of kBytes (8 or 16) of shared memory at `at` to TF32 in place: for
// tensor cores that read float32 operands from shared memory (wgmma), which would truncate them.
template <int kBytes>
__device__ __forceinline__ void round_to_tf32_in_shared(char* at) {
  struct alignas(kBytes) Floats {
    float v[kBytes / 4];
  };
  auto* floats = reinterpret_cast<Floats*>(at);
  Floats values = simt::ld_shared(floats);
#pragma unroll
  for (float& value : values.v) value = static_cast<float>(Tf32(value));
  simt::st_shared(floats, values);
}

// Element types the instruction multiplies.
template <typename T>
constexpr bool has_mma_m16n8k8 = std::is_same_v<T, c10::Half> ||
                                 std::is_same_v<T, c10::BFloat16> || std::is_same_v<T, Tf32>;

template <typename T>
constexpr simt::MmaOperand mma_operand = std::is_same_v<T, c10::Half>       ? simt::MmaOperand::f16
                                         : std::is_same_v<T, c10::BFloat16> ? simt::MmaOperand::bf16
                                                                            : simt::MmaOperand::tf32;

// The fragment registers of operand type T (see the header comment).
template <typename T>
struct MmaFragment : simt::MmaFragments<mma_operand<T>, 8> {
  static_assert(has_mma_m16n8k8<T>, "mma.m16n8k8 multiplies float16, bfloat16 or TF32");
};

// d += a * b for the warp's fragments; every lane of the warp must call it (with the same T).
template <typename T>
__device__ __forceinline__ void mma_m16n8k8(float (&d)[4],
                                            const uint32_t (&a)[MmaFragment<T>::kRegistersA],
                                            const uint32_t (&b)[MmaFragment<T>::kRegistersB]) {
  simt::mma_m16n8k8<mma_operand<T>>(d, a, b);
}

}  // namespace convkernels::cuda
