// cp.async.bulk (non-tensor): copies of several sizes completing on one mbarrier, a kernel that does
// not wait on the barrier (it reads stale shared memory), and one that announces more bytes than
// its copies deliver (a reported deadlock).
#pragma once

#include <cstdint>

#include "hopper/bulk_copy.h"
#include "hopper/mbarrier.h"
#include "simt.h"

constexpr int kBulkInts = 32 * 4 + 128;  // 32 copies of 16 bytes, then one of 512

// out[i] = in[i] for kBulkInts ints, through shared memory: each lane of warp 0 copies 16 bytes and
// lane 0 also the last 512, each announcing its bytes on the barrier (count 32). All 64 threads
// wait for the phase (kWait), or only for each other (a __syncthreads, which does not order bulk
// copies), then read 4 ints each. `extra_tx`: bytes lane 0 announces beyond its copies.
template <bool kWait>
__global__ void bulk_copy_kernel(const int* in, int* out, unsigned extra_tx) {
  __shared__ uint64_t bar;
  SIMT_DYNAMIC_SHARED(int, tile);  // -1 until a copy lands
  const int t = threadIdx.x;
  if (t == 0) simt::mbarrier_init(&bar, 32);
  __syncthreads();
  if (t < 32) {
    const unsigned bytes = 16 + (t == 0 ? 512 + extra_tx : 0);
    simt::mbarrier_arrive_expect_tx(&bar, bytes);
    simt::bulk_copy_global_to_shared(tile + 4 * t, in + 4 * t, 16, &bar);
    if (t == 0) simt::bulk_copy_global_to_shared(tile + 128, in + 128, 512, &bar);
  }
  if (kWait) {
    simt::mbarrier_wait_parity(&bar, 0);
  } else {
    __syncthreads();
  }
  for (int i = 4 * t; i < 4 * t + 4; ++i) out[i] = tile[i];
}

// One copy of `bytes` from `src` by a block of one thread, which waits for it: to count, or, of a
// size that is not a multiple of 16, an error.
__global__ void bulk_copy_range_kernel(const unsigned char* src, unsigned bytes) {
  __shared__ uint64_t bar;
  SIMT_DYNAMIC_SHARED(unsigned char, tile);
  simt::mbarrier_init(&bar, 1);
  simt::mbarrier_arrive_expect_tx(&bar, bytes);
  simt::bulk_copy_global_to_shared(tile, src, bytes, &bar);
  simt::mbarrier_wait_parity(&bar, 0);
}

template <bool kWait>
void bulk_copy(const int* in, int* out, unsigned extra_tx, cudaStream_t stream) {
  simt::launch(bulk_copy_kernel<kWait>, dim3(1), dim3(64), kBulkInts * sizeof(int), stream, in, out, extra_tx);
}
inline void bulk_copy_range(const unsigned char* src, unsigned bytes, cudaStream_t stream) {
  simt::launch(bulk_copy_range_kernel, dim3(1), dim3(1), bytes, stream, src, bytes);
}
