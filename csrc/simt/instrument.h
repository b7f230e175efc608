// What an emulated kernel tells the counters: every memory access an instruction makes, one call
// per thread, and the math operations it issues. The emulated instructions (cp.async, ldmatrix,
// mma) and the portable load/store accessors call these; with no counters active they cost a
// branch.
#pragma once

#include <cstdint>

namespace simt::detail {

enum class MemorySpace : uint8_t { global, shared };
enum class AccessKind : uint8_t { load, store };

// The math a kernel issues, counted in instructions of one warp-wide (mma) or one-thread (fma) op.
enum class MathOp : uint8_t {
  ffma,        // float32 fused multiply-add, one thread
  dfma,        // float64 fused multiply-add, one thread
  mma_16816,   // mma.sync.m16n8k16 (f16, bf16), one warp
  mma_1688,    // mma.sync.m16n8k8 (f16, bf16, tf32), one warp
};

// One thread's access of `bytes` bytes at `address` (bytes: 1, 2, 4, 8 or 16).
inline void note_access(MemorySpace /*space*/, AccessKind /*kind*/, const void* /*address*/,
                        unsigned /*bytes*/) {}

// `count` operations of kind `op` issued by the calling thread (mma: by the calling warp, noted by
// its lane 0).
inline void note_math(MathOp /*op*/, uint64_t /*count*/) {}

}  // namespace simt::detail
