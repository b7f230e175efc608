// One warp-wide tensor-core multiply-accumulate, D[16 x 8] += A[16 x 8] * B[8 x 8], with float16,
// bfloat16 or TF32 operands and float accumulators: PTX's mma.sync.aligned.m16n8k8.row.col
// (sm_80+).
//
// The operands live in the 32-bit registers of the warp's 32 lanes. With g = lane / 4 and
// t = lane % 4 (PTX ISA, "Matrix Fragments for mma.m16n8k8"), a lane holds two k of each of A's
// rows g and g+8 and of B's column g, and d = {D[g][2t], D[g][2t+1], D[g+8][2t], D[g+8][2t+1]}.
// Where the k sit depends on the operand type: a register packs kPack = 4 / sizeof(T) of them
// (lowest k in the low bits), so a lane's k take kSlots = 2 / kPack registers per row, and slot s
// holds k = kPack*(t + 4s) .. kPack*(t + 4s) + kPack-1. A's registers are a[2s] (row g) and
// a[2s+1] (row g+8), B's are b[s]:
//   .f16/.bf16: a = {A[g][2t, 2t+1]}, {A[g+8][2t, 2t+1]};            b = {B[2t, 2t+1][g]}
//   .tf32:      a = A[g][t], A[g+8][t], A[g][t+4], A[g+8][t+4];       b = B[t][g], B[t+4][g]
// Under nvcc this is the instruction. Under the SIMT emulator the same function gathers, with warp
// shuffles, the A rows and B columns its four D elements need from the lanes that hold them, so
// the emulator runs the fragment layout the instruction expects, not a stand-in for it.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "../simt/simt.h"

// The emulator, and GPUs older than sm_80 (which lack the bfloat16 and TF32 forms), run the shuffle
// twin: correct everywhere, fast only as the instruction.
#if defined(SIMT_EMULATOR) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800)
#define CONVKERNELS_MMA_TWIN 1
#endif

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
#if defined(CONVKERNELS_MMA_TWIN)
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

// Element types the instruction multiplies.
template <typename T>
constexpr bool has_mma_m16n8k8 = std::is_same_v<T, c10::Half> ||
                                 std::is_same_v<T, c10::BFloat16> || std::is_same_v<T, Tf32>;

// The fragment registers of operand type T (see the header comment).
template <typename T>
struct MmaFragment {
  static_assert(has_mma_m16n8k8<T>, "mma.m16n8k8 multiplies float16, bfloat16 or TF32");
  static constexpr int kPack = static_cast<int>(sizeof(uint32_t) / sizeof(T));
  static constexpr int kSlots = 2 / kPack;
  static constexpr int kRegistersA = 2 * kSlots, kRegistersB = kSlots;
};

#if defined(CONVKERNELS_MMA_TWIN)
// Lane `source`'s copy of a fragment, two registers per shuffle.
template <int kRegisters>
__device__ __forceinline__ void shuffle_fragment(const uint32_t (&mine)[kRegisters], int source,
                                                 uint32_t (&theirs)[kRegisters]) {
  for (int r = 0; r < kRegisters; r += 2) {
    if (r + 1 < kRegisters) {
      const unsigned long long pair = __shfl_sync(
          0xffffffffu, static_cast<unsigned long long>(mine[r + 1]) << 32 | mine[r], source);
      theirs[r] = static_cast<uint32_t>(pair);
      theirs[r + 1] = static_cast<uint32_t>(pair >> 32);
    } else {
      theirs[r] = __shfl_sync(0xffffffffu, mine[r], source);
    }
  }
}

// Element e (lowest k first) of a fragment register, as a float.
template <typename T>
__device__ __forceinline__ float element(uint32_t reg, int e) {
  T value;
  std::memcpy(static_cast<void*>(&value), reinterpret_cast<const char*>(&reg) + e * sizeof(T),
              sizeof(T));
  return static_cast<float>(value);
}
#endif

// d += a * b for the warp's fragments; every lane of the warp must call it (with the same T).
template <typename T>
__device__ __forceinline__ void mma_m16n8k8(float (&d)[4],
                                            const uint32_t (&a)[MmaFragment<T>::kRegistersA],
                                            const uint32_t (&b)[MmaFragment<T>::kRegistersB]) {
  using Fragment = MmaFragment<T>;
#if defined(CONVKERNELS_MMA_TWIN)
  const unsigned lane =
      ((threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x) % warpSize;
  const int g = static_cast<int>(lane / 4), t = static_cast<int>(lane % 4);
#if defined(SIMT_EMULATOR)
  if (lane == 0) simt::detail::note_math(simt::detail::MathOp::mma_1688, 1);
#endif
  // A row r of A and a column n of B are spread over lanes 4r+q and 4n+q, q < 4, and the lanes
  // with the same q hold the same k: gather A's rows g and g+8 from lane 4g+q and B's columns 2t
  // and 2t+1 from lanes 4*(2t)+q and 4*(2t+1)+q. Every lane takes part in every shuffle.
  for (int q = 0; q < 4; ++q) {
    uint32_t rows[Fragment::kRegistersA], col0[Fragment::kRegistersB], col1[Fragment::kRegistersB];
    shuffle_fragment(a, 4 * g + q, rows);
    shuffle_fragment(b, 8 * t + q, col0);
    shuffle_fragment(b, 8 * t + 4 + q, col1);
    for (int s = 0; s < Fragment::kSlots; ++s) {
      for (int e = 0; e < Fragment::kPack; ++e) {  // products of these operands are exact in float
        const float row_g = element<T>(rows[2 * s], e), row_g8 = element<T>(rows[2 * s + 1], e);
        const float b0 = element<T>(col0[s], e), b1 = element<T>(col1[s], e);
        d[0] += row_g * b0;
        d[1] += row_g * b1;
        d[2] += row_g8 * b0;
        d[3] += row_g8 * b1;
      }
    }
  }
#else
  if constexpr (std::is_same_v<T, c10::Half>) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b[0]));
  } else if constexpr (std::is_same_v<T, c10::BFloat16>) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b[0]));
  } else {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#endif
}

}  // namespace convkernels::cuda
