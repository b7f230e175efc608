// The wgmma.mma_async operations one CUDA thread has issued that have not completed, grouped as
// wgmma.commit_group groups them, and the arithmetic each does when it completes. Like cp.async
// (async_copies.h), an operation completes only when its thread waits for its group
// (wgmma.wait_group): only then are its shared-memory operands read and its accumulators written,
// so a kernel that reads its accumulators without the wait, or overwrites an operand before it,
// gets wrong results.
//
// Operands are read through 64-bit shared-memory matrix descriptors (PTX ISA, "Matrix Descriptor
// Format"): bits 0-13 start address >> 4, 16-29 leading dimension byte offset >> 4, 32-45 stride
// dimension byte offset >> 4, 49-51 base offset, 62-63 swizzle (0 none, 1 128B, 2 64B, 3 32B).
// An operand is K-major (A of M x K and B of N x K with K in consecutive bytes; tf32 must be) or
// MN-major (M or N in consecutive bytes; f16/bf16 with the instruction's transpose bit), in the
// canonical layouts CUTLASS's make_gmma_desc documents. Row r (of M or N), element k of the
// instruction's K, with kb = k * element bytes (0-31) and rb = r * element bytes, lies at
//   K-major,  no swizzle:  start + (r / 8) SBO + (kb / 16) LBO + (r % 8) 16 + kb % 16
//   K-major,  swizzle W:   start + (r / 8) SBO + (r % 8) W + kb                     (LBO unused)
//   MN-major, no swizzle:  start + (rb / 16) SBO + (k / 8) LBO + (k % 8) 16 + rb % 16
//   MN-major, swizzle W:   start + (rb / W) LBO + (k / 8) SBO + (k % 8) W + rb % W
// that is, 8 x 16-byte core matrices, or 8-row atoms of W = 32, 64 or 128-byte rows swizzled with a
// span of W (swizzle.h: the 16-byte chunk of a row moves by the row's place in its atom).
// Addresses are shared-memory addresses: in the emulator, offsets into the block's dynamic shared
// memory, which starts 1024-byte aligned; the swizzle applies to the full address, so a descriptor
// advanced along K inside a swizzled row (start + 32 bytes) reads what the GPU reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../commit_groups.h"
#include "../error.h"
#include "swizzle.h"

namespace simt::detail {

struct WgmmaOperation {
  float* d;                // the thread's n / 2 accumulators
  unsigned n;              // D is 64 x n
  uint64_t desc_a, desc_b;
  bool accumulate;         // scale-d: D = A B + D, else D = A B
  unsigned element_bytes;  // 2 (f16, bf16) or 4 (tf32): K = 32 / element_bytes
  bool mn_major_a, mn_major_b;
  float (*element)(const unsigned char*);  // an operand element, as the tensor core reads it
  const unsigned char* shared;             // the block's dynamic shared memory
  std::size_t shared_bytes;
  unsigned warp;  // in the warpgroup, 0-3: rows 16 warp .. 16 warp + 15 of D
  unsigned lane;
};

// The shared-memory offset of element k of row r of the operand `descriptor` names.
inline uint64_t wgmma_operand_offset(uint64_t descriptor, bool mn_major, unsigned r, unsigned k,
                                     unsigned element_bytes) {
  const uint64_t start = (descriptor & 0x3fff) << 4;
  const uint64_t lbo = (descriptor >> 16 & 0x3fff) << 4;
  const uint64_t sbo = (descriptor >> 32 & 0x3fff) << 4;
  const unsigned swizzle = static_cast<unsigned>(descriptor >> 62);
  if ((descriptor >> 49 & 7) != 0) throw Error("simt: wgmma descriptor with a base offset (bits 49-51): not modelled");
  const unsigned rb = r * element_bytes, kb = k * element_bytes;
  if (swizzle == 0) {
    return mn_major ? start + rb / 16 * sbo + k / 8 * lbo + k % 8 * 16 + rb % 16
                    : start + r / 8 * sbo + kb / 16 * lbo + r % 8 * 16 + kb % 16;
  }
  const unsigned span = 256u >> swizzle;  // 1: 128 bytes, 2: 64, 3: 32
  return swizzle_address(mn_major ? start + rb / span * lbo + k / 8 * sbo + k % 8 * span + rb % span
                                  : start + r / 8 * sbo + r % 8 * span + kb,
                         span);
}

class WgmmaGroups {
 public:
  void fence() { fenced_ = true; }

  void issue(const WgmmaOperation& op) {
    // The one ordering rule the emulator checks: the PTX ISA asks for wgmma.fence before a
    // thread's first wgmma.mma_async (its accumulators were written by ordinary instructions).
    if (!fenced_) throw Error("simt: wgmma.mma_async without a wgmma.fence before the warpgroup's first one");
    groups_.issue(op);
  }

  void commit() { groups_.commit(); }

  // Completes, in issue order, every operation of the committed groups but the `newest` most recent.
  void wait(unsigned newest) { groups_.wait(newest, complete); }

  void reset() {
    groups_.reset();
    fenced_ = false;
  }

 private:
  // D fragment (PTX ISA, "wgmma .m64nNk16 ... Matrix Fragments for accumulator D"): register i of
  // lane l in warp w holds D[16 w + l / 4 + 8 ((i % 4) / 2)][8 (i / 4) + 2 (l % 4) + i % 2].
  static void complete(const WgmmaOperation& op) {
    const unsigned k_count = 32 / op.element_bytes;
    const auto operand = [&](uint64_t descriptor, bool mn_major, unsigned r, unsigned k) {
      const uint64_t offset = wgmma_operand_offset(descriptor, mn_major, r, k, op.element_bytes);
      if (offset + op.element_bytes > op.shared_bytes) {
        throw Error("simt: wgmma operand byte " + std::to_string(offset) + " lies outside the block's " +
                    std::to_string(op.shared_bytes) + " bytes of dynamic shared memory");
      }
      return op.element(op.shared + offset);
    };
    for (unsigned i = 0; i < op.n / 2; ++i) {
      const unsigned row = 16 * op.warp + op.lane / 4 + 8 * (i % 4 / 2);
      const unsigned col = 8 * (i / 4) + 2 * (op.lane % 4) + i % 2;
      float sum = op.accumulate ? op.d[i] : 0.0f;
      for (unsigned k = 0; k < k_count; ++k) {
        sum += operand(op.desc_a, op.mn_major_a, row, k) * operand(op.desc_b, op.mn_major_b, col, k);
      }
      op.d[i] = sum;
    }
  }

  CommitGroups<WgmmaOperation> groups_;
  bool fenced_ = false;
};

}  // namespace simt::detail
