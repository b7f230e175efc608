// Tiled tensor copies global -> shared by the tensor memory accelerator, PTX's
// cp.async.bulk.tensor (sm_90), written once for nvcc and the emulator:
//   simt::bulk_tensor_copy_2d(dst, map, x, y, bar)
//       cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes
//           [dst], [map, {x, y}], [bar]
// One thread issues it. `map` is the address of a kernel's `const __grid_constant__ CUtensorMap`
// parameter (tensor_map.h); x (innermost) and y are signed element coordinates of the box's first
// element. The box (the map's boxDim; along a dimension with an element stride s, ceil(box / s)
// elements s apart) lands densely in shared memory, innermost dimension first, at `dst` (128-byte
// aligned), swizzled as the map says (swizzle.h: with a 128B swizzle and a 128-byte inner extent,
// exactly the K-major layout wgmma reads). Elements outside the tensor are filled with zeros, or
// with NaN under CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA (here all-ones bytes, a NaN in
// every floating type). When the copy lands it performs complete-tx on `bar` for the whole box's
// bytes, out-of-bounds elements included.
//
// Like cp.async.bulk (bulk_copy.h) the emulator holds the copy in the block's BulkCopies until no
// thread can run. Under nvcc it is an sm_90 instruction; older targets compile it to a trap.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "simt.h"
#include "tensor_map.h"

#if defined(__CUDACC__)
#include "hopper_asm.h"
#else
#include <string>
#include <vector>

#include "bulk_copies.h"
#include "error.h"
#include "swizzle.h"
#include "thread_context.h"
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
  this_thread().block->issue_bulk_copy(std::move(copy));
}
#endif
}  // namespace detail

__device__ __forceinline__ void bulk_tensor_copy_2d(void* shared_dst, const CUtensorMap* map, int x, int y,
                                                    uint64_t* bar) {
#if defined(__CUDACC__)
  SIMT_SM90_ASM(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::
          "r"(static_cast<unsigned>(__cvta_generic_to_shared(shared_dst))),
      "l"(map), "r"(x), "r"(y), "r"(static_cast<unsigned>(__cvta_generic_to_shared(bar)))
      : "memory");
#else
  const int coords[2] = {x, y};
  detail::issue_tensor_copy(shared_dst, map, coords, 2, bar);
#endif
}

}  // namespace simt
