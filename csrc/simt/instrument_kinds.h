// The kinds of event an emulated kernel reports to the counters (instrument.h, counters.h).
#pragma once

#include <cstdint>

namespace simt::detail {

enum class MemorySpace : uint8_t { global, shared };
enum class AccessKind : uint8_t { load, store };

// The math a kernel issues, counted in instructions of one warp-wide (mma) or one-thread (fma) op;
// wgmma, a warpgroup's, in units of its m64n8 slices.
enum class MathOp : uint8_t {
  ffma,        // float32 fused multiply-add, one thread
  dfma,        // float64 fused multiply-add, one thread
  mma_16816,   // mma.sync.m16n8k16 (f16, bf16), one warp
  mma_1688,    // mma.sync.m16n8k8 (f16, bf16, tf32), one warp
  mma_1684,    // mma.sync.m16n8k4 (tf32), one warp
  wgmma_m64n8, // wgmma.mma_async.m64nNk16 (f16, bf16) or k8 (tf32), one warpgroup, counted N / 8
               // times: each slice is the tensor work of 4 mma.sync of the same k
};

}  // namespace simt::detail
