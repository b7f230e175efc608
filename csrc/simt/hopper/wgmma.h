// Warpgroup-wide asynchronous tensor-core multiply-accumulate with both operands in shared memory,
// PTX's wgmma (sm_90a), written once for nvcc and the emulator:
//   simt::wgmma_descriptor(smem, lbo_bytes, sbo_bytes, swizzle)   a 64-bit matrix descriptor
//   simt::wgmma_fence()                       wgmma.fence.sync.aligned
//   simt::wgmma_mma_async<kType, kN, kMajorA, kMajorB>(d, desc_a, desc_b, accumulate)
//       wgmma.mma_async.sync.aligned.m64n{kN}k16.f32.{f16,bf16} (k8 for tf32): D[64 x kN] (+)= A B
//   simt::wgmma_commit_group()                wgmma.commit_group.sync.aligned
//   simt::wgmma_wait_group<kNewest>()         wgmma.wait_group.sync.aligned kNewest
//   simt::wgmma_fence_operand(d)              keeps nvcc from moving accumulator accesses across
//                                             the asynchronous operations (nothing in the emulator)
// A warpgroup is 4 consecutive warps (the first a multiple of 4); all 128 threads call each of these
// together with the same descriptors. One wgmma multiplies 32 bytes of K: 16 f16/bf16 or 8 tf32
// elements. A is 64 x K and B is K x kN, each K-major (the default; for B, stored as kN rows of K)
// or, for f16/bf16, MN-major; the layouts, the descriptor and the swizzle modes are described in
// wgmma_groups.h. kN is 8 to 256, a power of two
// here. Each thread holds kN / 2 float accumulators: register i of lane l of warp w of the warpgroup
// is D[16 w + l / 4 + 8 ((i % 4) / 2)][8 (i / 4) + 2 (l % 4) + i % 2]. `accumulate` false: D = A B.
//
// Order of use, as the PTX ISA requires: wgmma_fence() before the first wgmma and after writing
// accumulators or operands by other means; a batch of wgmmas; commit_group; wait_group before the
// accumulators are read or the operands' shared memory is reused. The emulator completes a wgmma
// only in its thread's wait_group (wgmma_groups.h), and requires the fence before the first one.
// Under nvcc wgmma needs sm_90a; other targets compile it to a trap (hopper_asm.h).
#pragma once

#include <cstdint>

#include "../mma.h"
#include "../simt.h"

#if defined(__CUDACC__)
#include "hopper_asm.h"
#else
#include <cstring>
#include <string>

#include "../error.h"
#include "../instrument.h"
#include "../thread_context.h"
#include "wgmma_groups.h"
#endif

namespace simt {

enum class WgmmaSwizzle : unsigned { none = 0, b128 = 1, b64 = 2, b32 = 3 };

// Which dimension of an operand is contiguous in shared memory (the instruction's transpose bit).
enum class WgmmaMajor : int { k = 0, mn = 1 };

__device__ __forceinline__ uint64_t wgmma_descriptor(const void* smem, unsigned leading_byte_offset,
                                                     unsigned stride_byte_offset, WgmmaSwizzle swizzle) {
#if defined(__CUDACC__)
  const uint64_t address = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
#else
  // The emulator's shared-memory addresses are offsets into the block's dynamic shared memory.
  const detail::ThreadContext& thread = detail::this_thread();
  const auto* byte = static_cast<const unsigned char*>(smem);
  if (byte < thread.dynamic_shared || byte >= thread.dynamic_shared + thread.dynamic_shared_bytes) {
    throw Error("simt: a wgmma descriptor names an address outside the block's dynamic shared memory (the "
                "emulator places wgmma operands there only)");
  }
  const uint64_t address = static_cast<uint64_t>(byte - thread.dynamic_shared);
#endif
  return (address & 0x3ffff) >> 4 | uint64_t{(leading_byte_offset & 0x3ffff) >> 4} << 16 |
         uint64_t{(stride_byte_offset & 0x3ffff) >> 4} << 32 | uint64_t{static_cast<unsigned>(swizzle)} << 62;
}

#if defined(__CUDACC__)
// Accumulator, descriptor, scale-d and transpose operand lists of the asm, per kN.
#define SIMT_WGMMA_D_8 "{%0, %1, %2, %3}"
#define SIMT_WGMMA_AB_8 "%4, %5"
#define SIMT_WGMMA_SCALE_D_8 "%6"
#define SIMT_WGMMA_MAJOR_8 "%7, %8"
#define SIMT_WGMMA_D_16 "{%0, %1, %2, %3, %4, %5, %6, %7}"
#define SIMT_WGMMA_AB_16 "%8, %9"
#define SIMT_WGMMA_SCALE_D_16 "%10"
#define SIMT_WGMMA_MAJOR_16 "%11, %12"
#define SIMT_WGMMA_D_32 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}"
#define SIMT_WGMMA_AB_32 "%16, %17"
#define SIMT_WGMMA_SCALE_D_32 "%18"
#define SIMT_WGMMA_MAJOR_32 "%19, %20"
#define SIMT_WGMMA_D_64 \
  "{" "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31" "}"
#define SIMT_WGMMA_AB_64 "%32, %33"
#define SIMT_WGMMA_SCALE_D_64 "%34"
#define SIMT_WGMMA_MAJOR_64 "%35, %36"
#define SIMT_WGMMA_D_128 \
  "{" "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" "}"
#define SIMT_WGMMA_AB_128 "%64, %65"
#define SIMT_WGMMA_SCALE_D_128 "%66"
#define SIMT_WGMMA_MAJOR_128 "%67, %68"
#define SIMT_WGMMA_D_256 \
  "{" "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127" "}"
#define SIMT_WGMMA_AB_256 "%128, %129"
#define SIMT_WGMMA_SCALE_D_256 "%130"
#define SIMT_WGMMA_MAJOR_256 "%131, %132"
#define SIMT_WGMMA_F4(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define SIMT_WGMMA_F8(i) SIMT_WGMMA_F4(i), SIMT_WGMMA_F4(i + 4)
#define SIMT_WGMMA_F16(i) SIMT_WGMMA_F8(i), SIMT_WGMMA_F8(i + 8)
#define SIMT_WGMMA_F32(i) SIMT_WGMMA_F16(i), SIMT_WGMMA_F16(i + 16)
#define SIMT_WGMMA_F64(i) SIMT_WGMMA_F32(i), SIMT_WGMMA_F32(i + 32)
#define SIMT_WGMMA_F128(i) SIMT_WGMMA_F64(i), SIMT_WGMMA_F64(i + 64)
#define SIMT_WGMMA_OUT_8 SIMT_WGMMA_F4(0)
#define SIMT_WGMMA_OUT_16 SIMT_WGMMA_F8(0)
#define SIMT_WGMMA_OUT_32 SIMT_WGMMA_F16(0)
#define SIMT_WGMMA_OUT_64 SIMT_WGMMA_F32(0)
#define SIMT_WGMMA_OUT_128 SIMT_WGMMA_F64(0)
#define SIMT_WGMMA_OUT_256 SIMT_WGMMA_F128(0)

// One wgmma.mma_async with operands of kType; the asm spelled out for each kN.
#define SIMT_WGMMA_ASM(N, K, TYPE, IMMEDIATES)                                                                    \
  SIMT_SM90A_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, " SIMT_WGMMA_SCALE_D_##N ", 0;\n"                              \
                 "wgmma.mma_async.sync.aligned.m64n" #N "k" #K ".f32." TYPE "." TYPE " " SIMT_WGMMA_D_##N ", "   \
                 SIMT_WGMMA_AB_##N ", p" IMMEDIATES ";\n}\n"                                                        \
                 : SIMT_WGMMA_OUT_##N                                                                            \
                 : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)),                                  \
                   "n"(static_cast<int>(kMajorA)), "n"(static_cast<int>(kMajorB))                                \
                 : "memory")
// f16 and bf16 take the scales of A and B (1) and their transposes (1: MN-major); tf32 only the scales.
#define SIMT_WGMMA_ANY_TYPE(N)                                          \
  if constexpr (kType == MmaOperand::f16) {                             \
    SIMT_WGMMA_ASM(N, 16, "f16", ", 1, 1, " SIMT_WGMMA_MAJOR_##N);      \
  } else if constexpr (kType == MmaOperand::bf16) {                     \
    SIMT_WGMMA_ASM(N, 16, "bf16", ", 1, 1, " SIMT_WGMMA_MAJOR_##N);     \
  } else {                                                              \
    SIMT_WGMMA_ASM(N, 8, "tf32", ", 1, 1");                             \
  }
#endif

namespace detail {
#if !defined(__CUDACC__)
template <MmaOperand kType>
float wgmma_element(const unsigned char* bytes) {
  uint32_t reg = 0;
  std::memcpy(&reg, bytes, kType == MmaOperand::tf32 ? 4 : 2);
  return mma_element<kType>(reg, 0);
}
#endif
}  // namespace detail

__device__ __forceinline__ void wgmma_fence() {
#if defined(__CUDACC__)
  SIMT_SM90A_ASM("wgmma.fence.sync.aligned;\n" ::: "memory");
#else
  detail::this_thread().wgmma->fence();
#endif
}

template <MmaOperand kType, int kN, WgmmaMajor kMajorA = WgmmaMajor::k, WgmmaMajor kMajorB = WgmmaMajor::k>
__device__ __forceinline__ void wgmma_mma_async(float (&d)[kN / 2], uint64_t desc_a, uint64_t desc_b, bool accumulate) {
  static_assert(kN >= 8 && kN <= 256 && (kN & (kN - 1)) == 0, "wgmma: kN is a power of two from 8 to 256 here");
  static_assert(kType != MmaOperand::tf32 || (kMajorA == WgmmaMajor::k && kMajorB == WgmmaMajor::k),
                "wgmma: tf32 operands are K-major");
#if defined(__CUDACC__)
  if constexpr (kN == 8) {
    SIMT_WGMMA_ANY_TYPE(8)
  } else if constexpr (kN == 16) {
    SIMT_WGMMA_ANY_TYPE(16)
  } else if constexpr (kN == 32) {
    SIMT_WGMMA_ANY_TYPE(32)
  } else if constexpr (kN == 64) {
    SIMT_WGMMA_ANY_TYPE(64)
  } else if constexpr (kN == 128) {
    SIMT_WGMMA_ANY_TYPE(128)
  } else {
    SIMT_WGMMA_ANY_TYPE(256)
  }
#else
  const detail::ThreadContext& thread = detail::this_thread();
  detail::WgmmaOperation op{};
  op.d = d;
  op.n = kN;
  op.desc_a = desc_a;
  op.desc_b = desc_b;
  op.accumulate = accumulate;
  op.element_bytes = kType == MmaOperand::tf32 ? 4 : 2;
  op.mn_major_a = kMajorA == WgmmaMajor::mn;
  op.mn_major_b = kMajorB == WgmmaMajor::mn;
  op.element = &detail::wgmma_element<kType>;
  op.shared = thread.dynamic_shared;
  op.shared_bytes = thread.dynamic_shared_bytes;
  op.warp = thread.tid / detail::kWarpSize % 4;
  op.lane = thread.tid % detail::kWarpSize;
  thread.wgmma->issue(op);
  if (thread.tid % (4 * detail::kWarpSize) == 0) detail::note_math(detail::MathOp::wgmma_m64n8, kN / 8);
#endif
}

__device__ __forceinline__ void wgmma_commit_group() {
#if defined(__CUDACC__)
  SIMT_SM90A_ASM("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#else
  detail::this_thread().wgmma->commit();
#endif
}

template <int kNewest>
__device__ __forceinline__ void wgmma_wait_group() {
  static_assert(kNewest >= 0, "wait_group counts groups");
#if defined(__CUDACC__)
  SIMT_SM90A_ASM("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kNewest) : "memory");
#else
  detail::this_thread().wgmma->wait(kNewest);
#endif
}

template <int kRegisters>
__device__ __forceinline__ void wgmma_fence_operand(float (&d)[kRegisters]) {
#if defined(__CUDACC__)
#pragma unroll
  for (int i = 0; i < kRegisters; ++i) asm volatile("" : "+f"(d[i])::"memory");
#else
  (void)d;
#endif
}

#if defined(__CUDACC__)
#undef SIMT_WGMMA_ANY_TYPE
#undef SIMT_WGMMA_ASM
#endif

}  // namespace simt
