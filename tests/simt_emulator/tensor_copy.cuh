// cp.async.bulk.tensor (tiled): one thread copies a box of a tensor, partly outside it, into shared
// memory through a host-encoded tensor map, completing on an mbarrier; the block then stores the
// shared-memory bytes exactly as they lie, for the host to check against the layout tables.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "hopper/bulk_tensor_copy.h"
#include "hopper/mbarrier.h"
#include "simt.h"

template <int kRank>
struct TensorCoords {
  int c[kRank];  // innermost first
};

// out[0 .. box_bytes): the shared memory the copy wrote. dst_offset: bytes from the 1024-byte-aligned
// start of shared memory to the destination.
template <int kRank>
__global__ void tensor_copy_kernel(const __grid_constant__ CUtensorMap map, TensorCoords<kRank> at, int box_bytes,
                                   int dst_offset, unsigned char* out) {
  __shared__ uint64_t bar;
  SIMT_DYNAMIC_SHARED(unsigned char, smem);
  if (threadIdx.x == 0) {
    simt::mbarrier_init(&bar, 1);
    simt::mbarrier_arrive_expect_tx(&bar, static_cast<unsigned>(box_bytes));
    simt::bulk_tensor_copy<kRank>(smem + dst_offset, &map, at.c, &bar);
  }
  __syncthreads();  // the barrier is initialised before anyone waits on it
  simt::mbarrier_wait_parity(&bar, 0);
  for (int i = threadIdx.x; i < box_bytes; i += blockDim.x) out[i] = smem[dst_offset + i];
}

template <int kRank>
void tensor_copy(const CUtensorMap& map, TensorCoords<kRank> at, int box_bytes, int dst_offset, unsigned char* out,
                 cudaStream_t stream) {
  simt::launch(tensor_copy_kernel<kRank>, dim3(1), dim3(64), static_cast<std::size_t>(dst_offset + box_bytes), stream,
               map, at, box_bytes, dst_offset, out);
}
