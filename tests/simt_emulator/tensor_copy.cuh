// cp.async.bulk.tensor.2d (tiled): one thread copies a box of a 2-D tensor, partly outside it,
// into shared memory through a host-encoded tensor map, completing on an mbarrier; the block then
// stores the shared-memory bytes exactly as they lie, for the host to check against the layout
// tables.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "bulk_tensor_copy.h"
#include "mbarrier.h"
#include "simt.h"

// out[0 .. box_bytes): the shared memory the copy wrote. dst_offset: bytes from the 1024-byte-aligned
// start of shared memory to the destination.
__global__ void tensor_copy_kernel(const __grid_constant__ CUtensorMap map, int x, int y, int box_bytes,
                                   int dst_offset, unsigned char* out) {
  __shared__ uint64_t bar;
  SIMT_DYNAMIC_SHARED(unsigned char, smem);
  if (threadIdx.x == 0) {
    simt::mbarrier_init(&bar, 1);
    simt::mbarrier_arrive_expect_tx(&bar, static_cast<unsigned>(box_bytes));
    simt::bulk_tensor_copy_2d(smem + dst_offset, &map, x, y, &bar);
  }
  __syncthreads();  // the barrier is initialised before anyone waits on it
  simt::mbarrier_wait_parity(&bar, 0);
  for (int i = threadIdx.x; i < box_bytes; i += blockDim.x) out[i] = smem[dst_offset + i];
}

inline void tensor_copy(const CUtensorMap& map, int x, int y, int box_bytes, int dst_offset, unsigned char* out,
                        cudaStream_t stream) {
  simt::launch(tensor_copy_kernel, dim3(1), dim3(64), static_cast<std::size_t>(dst_offset + box_bytes), stream, map,
               x, y, box_bytes, dst_offset, out);
}
