// Tiled tensor copies global -> shared by the tensor memory accelerator, PTX's
// cp.async.bulk.tensor (sm_90), written once for nvcc and the emulator:
//   simt::bulk_tensor_copy<kRank>(dst, map, coords, bar)
//       cp.async.bulk.tensor.{kRank}d.shared::cluster.global.tile.mbarrier::complete_tx::bytes
//           [dst], [map, {coords[0], ...}], [bar]
// One thread issues it. `map` is the address of a kernel's `const __grid_constant__ CUtensorMap`
// parameter (tensor_map.h) of rank kRank (1 to 5); coords, innermost first, are the signed element
// coordinates of the box's first element. The box (the map's boxDim; along a dimension with an
// element stride s, ceil(box / s) elements s apart) lands densely in shared memory, innermost
// dimension first, at `dst` (128-byte aligned), swizzled as the map says (swizzle.h: with a 128B
// swizzle and a 128-byte inner extent, exactly the K-major layout wgmma reads). Elements outside the
// tensor are filled with zeros, or with NaN under CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA
// (here all-ones bytes, a NaN in every floating type). When the copy lands it performs complete-tx
// on `bar` for the whole box's bytes, out-of-bounds elements included.
//
// Like cp.async.bulk (bulk_copy.h) the emulator holds the copy in the block's BulkCopies until no
// thread can run, and counts it with the sectors of its in-bounds elements (the fill reads none).
// Under nvcc it is an sm_90 instruction; older targets compile it to a trap.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "../simt.h"
#include "tensor_map.h"

#if defined(__CUDACC__)
#include "hopper_asm.h"
#else
#include <string>
#include <vector>

#include "bulk_copies.h"
#include "../error.h"
#include "../instrument.h"
#include "swizzle.h"
#include "../thread_context.h"
#endif

namespace simt {

namespace detail {
#if !defined(__CUDACC__)
// Appends `piece`, or extends the last piece when `piece` continues it in both source and destination.
inline void append_piece(std::vector<CopyPiece>& pieces, const CopyPiece& piece) {
  if (!pieces.empty()) {
    CopyPiece& last = pieces.back();
    const bool dst_continues = last.dst + last.bytes == piece.dst;
    const bool src_continues = last.src == nullptr ? piece.src == nullptr && last.fill == piece.fill
                                                   : piece.src != nullptr && last.src + last.bytes == piece.src;
    if (dst_continues && src_continues) {
      last.bytes += piece.bytes;
      return;
    }
  }
  pieces.push_back(piece);
}

inline void issue_tensor_copy(void* dst, const CUtensorMap* map, const int* coords, unsigned rank, uint64_t* bar) {
  const char* const op = "cp.async.bulk.tensor";
  const TensorMapFields& f = tensor_map_fields(map, op);
  if (rank != f.rank) {
    throw Error(std::string("simt: ") + op + "." + std::to_string(rank) + "d with a tensor map of rank " +
                std::to_string(f.rank));
  }
  if (reinterpret_cast<uintptr_t>(dst) % 128 != 0) {
    throw Error(std::string("simt: ") + op + ": the shared memory destination must be 128-byte aligned");
  }
  unsigned count[kTensorMapMaxRank];
  unsigned elements = 1;
  for (unsigned i = 0; i < rank; ++i) {
    count[i] = (f.box[i] + f.element_strides[i] - 1u) / f.element_strides[i];
    elements *= count[i];
  }
  BulkCopy copy{{}, bar, elements * f.element_bytes};
  unsigned index[kTensorMapMaxRank] = {};  // the element's place in the box, innermost first
  for (unsigned e = 0; e < elements; ++e) {
    const uint64_t address = swizzle_address(reinterpret_cast<uintptr_t>(dst) + uint64_t{e} * f.element_bytes,
                                             f.swizzle_span);
    const unsigned char* src = f.global;
    for (unsigned i = 0; i < rank && src != nullptr; ++i) {
      const int64_t c = int64_t{coords[i]} + int64_t{index[i]} * f.element_strides[i];
      src = c >= 0 && static_cast<uint64_t>(c) < f.dims[i] ? src + c * f.stride(i) : nullptr;
    }
    append_piece(copy.pieces, CopyPiece{reinterpret_cast<unsigned char*>(address), src, f.element_bytes,
                                        static_cast<unsigned char>(f.nan_fill ? 0xff : 0)});
    for (unsigned i = 0; i < rank && ++index[i] == count[i]; ++i) index[i] = 0;
  }
  note_bulk_copy(copy);
  this_thread().block->issue_bulk_copy(std::move(copy));
}
#endif
}  // namespace detail

// The asm of one rank: the coordinates are operands 2 .. rank + 1, the mbarrier the next.
#define SIMT_BULK_TENSOR_COPY(RANK, COORDS, BAR, ...)                                                         \
  SIMT_SM90_ASM("cp.async.bulk.tensor." #RANK "d.shared::cluster.global.tile.mbarrier::complete_tx::bytes "   \
                "[%0], [%1, {" COORDS "}], [" BAR "];\n" ::"r"(static_cast<unsigned>(__cvta_generic_to_shared(  \
                    shared_dst))),                                                                          \
                "l"(map), __VA_ARGS__, "r"(static_cast<unsigned>(__cvta_generic_to_shared(bar)))            \
                : "memory")

template <int kRank>
__device__ __forceinline__ void bulk_tensor_copy(void* shared_dst, const CUtensorMap* map, const int (&coords)[kRank],
                                                 uint64_t* bar) {
  static_assert(kRank >= 1 && kRank <= 5, "tensor copies have rank 1 to 5");
#if defined(__CUDACC__)
  const int* c = coords;
  if constexpr (kRank == 1) {
    SIMT_BULK_TENSOR_COPY(1, "%2", "%3", "r"(c[0]));
  } else if constexpr (kRank == 2) {
    SIMT_BULK_TENSOR_COPY(2, "%2, %3", "%4", "r"(c[0]), "r"(c[1]));
  } else if constexpr (kRank == 3) {
    SIMT_BULK_TENSOR_COPY(3, "%2, %3, %4", "%5", "r"(c[0]), "r"(c[1]), "r"(c[2]));
  } else if constexpr (kRank == 4) {
    SIMT_BULK_TENSOR_COPY(4, "%2, %3, %4, %5", "%6", "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]));
  } else {
    SIMT_BULK_TENSOR_COPY(5, "%2, %3, %4, %5, %6", "%7", "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]), "r"(c[4]));
  }
#else
  detail::issue_tensor_copy(shared_dst, map, coords, kRank, bar);
#endif
}

#undef SIMT_BULK_TENSOR_COPY

}  // namespace simt
