// Warp-wide loads of 8x8 matrices of 16-bit elements from shared memory, PTX's
// ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{,.trans}.shared.b16 (sm_75+), written once for nvcc and
// the emulator:
//   simt::ldmatrix<kMatrices>(fragment, row_address)         .x1 / .x2 / .x4
//   simt::ldmatrix_trans<kMatrices>(fragment, row_address)   the same with .trans
// Every lane of the warp calls it. Lane l names the 16-byte-aligned address of row l % 8 of matrix
// l / 8 (lanes 8*kMatrices and up name nothing: their addresses are ignored). Register i of lane l
// receives two adjacent elements of matrix i, the lower column in the low half:
//   plain:  row l / 4, columns 2(l % 4) and 2(l % 4) + 1
//   .trans: column l / 4, rows 2(l % 4) and 2(l % 4) + 1 (the matrix as if stored column by column)
//
// The emulator has each addressing lane read its row first, then moves the rows' halves between
// lanes with shuffles, so every read happens before any lane leaves the instruction.
#pragma once

#include <cstdint>
#include <cstring>

#include "simt.h"

#if !defined(__CUDACC__)
#include <string>

#include "error.h"
#include "instrument.h"
#endif

namespace simt {

namespace detail {

#if !defined(__CUDACC__)
// The 16-bit element `e` (0-3) of the 8 bytes lane `source` holds in `half` (0: row bytes 0-7,
// 1: bytes 8-15) of its row, fetched by two shuffles that every lane takes part in.
inline uint16_t row_element(const uint64_t (&row)[2], unsigned source, unsigned element) {
  const uint64_t low = __shfl_sync(0xffffffffu, row[0], static_cast<int>(source));
  const uint64_t high = __shfl_sync(0xffffffffu, row[1], static_cast<int>(source));
  return static_cast<uint16_t>((element < 4 ? low : high) >> (16 * (element % 4)));
}

template <int kMatrices, bool kTransposed>
void emulate_ldmatrix(uint32_t (&fragment)[kMatrices], const void* row_address) {
  const unsigned lane = this_thread().tid % kWarpSize;
  uint64_t row[2] = {0, 0};
  if (lane < 8u * kMatrices) {
    if (reinterpret_cast<uintptr_t>(row_address) % 16 != 0) {
      throw Error("simt: ldmatrix: lane " + std::to_string(lane) + " names a row address that is not 16-byte aligned");
    }
    check_shared_bounds(row_address, 16, "an ldmatrix row");
    note_access(MemorySpace::shared, AccessKind::load, row_address, 16);
    std::memcpy(row, row_address, sizeof row);
  }
  for (int i = 0; i < kMatrices; ++i) {
    uint32_t pair = 0;
    for (unsigned j = 0; j < 2; ++j) {
      // The row (lane of matrix i) and the column of the element this lane receives as half j.
      const unsigned source_row = kTransposed ? 2 * (lane % 4) + j : lane / 4;
      const unsigned column = kTransposed ? lane / 4 : 2 * (lane % 4) + j;
      pair |= uint32_t{row_element(row, 8 * i + source_row, column)} << (16 * j);
    }
    fragment[i] = pair;
  }
}
#endif

}  // namespace detail

template <int kMatrices>
__device__ __forceinline__ void ldmatrix(uint32_t (&fragment)[kMatrices], const void* row_address) {
  static_assert(kMatrices == 1 || kMatrices == 2 || kMatrices == 4, "ldmatrix loads 1, 2 or 4 matrices");
#if defined(__CUDACC__)
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row_address));
  if constexpr (kMatrices == 1) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(fragment[0]) : "r"(address)
                 : "memory");
  } else if constexpr (kMatrices == 2) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(fragment[0]), "=r"(fragment[1])
                 : "r"(address)
                 : "memory");
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(fragment[0]), "=r"(fragment[1]), "=r"(fragment[2]), "=r"(fragment[3])
                 : "r"(address)
                 : "memory");
  }
#else
  detail::emulate_ldmatrix<kMatrices, false>(fragment, row_address);
#endif
}

template <int kMatrices>
__device__ __forceinline__ void ldmatrix_trans(uint32_t (&fragment)[kMatrices], const void* row_address) {
  static_assert(kMatrices == 1 || kMatrices == 2 || kMatrices == 4, "ldmatrix loads 1, 2 or 4 matrices");
#if defined(__CUDACC__)
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row_address));
  if constexpr (kMatrices == 1) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(fragment[0]) : "r"(address)
                 : "memory");
  } else if constexpr (kMatrices == 2) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(fragment[0]), "=r"(fragment[1])
                 : "r"(address)
                 : "memory");
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(fragment[0]), "=r"(fragment[1]), "=r"(fragment[2]), "=r"(fragment[3])
                 : "r"(address)
                 : "memory");
  }
#else
  detail::emulate_ldmatrix<kMatrices, true>(fragment, row_address);
#endif
}

}  // namespace simt
