// The kinds of event an emulated kernel reports to the counters (instrument.h, counters.h).
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

}  // namespace simt::detail
