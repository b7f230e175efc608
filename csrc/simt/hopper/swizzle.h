// The shared-memory swizzle that the tensor memory accelerator writes and wgmma reads (CuTe's
// Swizzle<B, 4, 3>): with a span of 32, 64 or 128 bytes, the 16-byte chunk of an address (bits 4 to
// 4 + B - 1, B = log2(span / 16)) is XORed with bits 7 to 7 + B - 1, the address's 128-byte row
// within an 8-row pattern of span * 8 bytes. A row of `span` bytes keeps its chunks, permuted by
// the row's place in its pattern. It acts on shared-memory addresses, so it needs the pattern
// aligned: the emulator's dynamic shared memory starts on a 1024-byte boundary.
#pragma once

#include <cstdint>

namespace simt::detail {

// span: 0 (no swizzle), 32, 64 or 128.
inline uint64_t swizzle_address(uint64_t address, unsigned span) {
  if (span == 0) return address;
  return address ^ (address >> 7 & (span / 16 - 1)) << 4;
}

}  // namespace simt::detail
