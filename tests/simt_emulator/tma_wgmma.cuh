// The Hopper mainloop in miniature: two tensor copies bring A (64 x 64 bf16) and B (kN x 64, B
// transposed), K contiguous, into shared memory with the 128B swizzle, completing on one mbarrier;
// one warpgroup waits for it and multiplies them with wgmma in four k-slices of 16, the first
// without accumulating. Shows that what the tensor copy writes is what wgmma's descriptors read.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "hopper/bulk_tensor_copy.h"
#include "hopper/mbarrier.h"
#include "simt.h"
#include "hopper/wgmma.h"

// d: thread t's kN / 2 accumulators at t * kN / 2; `initial`: what they hold before the first
// k-slice, which must not count (scale-d 0). skip_mbarrier_wait: a planted error.
template <int kN>
__global__ void tma_wgmma_kernel(const __grid_constant__ CUtensorMap a_map, const __grid_constant__ CUtensorMap b_map,
                                 float initial, bool skip_mbarrier_wait, float* d) {
  constexpr int kRowBytes = 128;  // 64 bf16 of K: one 128B swizzle row
  __shared__ uint64_t bar;
  SIMT_DYNAMIC_SHARED(unsigned char, smem);
  unsigned char* const a = smem;
  unsigned char* const b = smem + 64 * kRowBytes;
  const int t = threadIdx.x;
  if (t == 0) {
    simt::mbarrier_init(&bar, 1);
    simt::mbarrier_arrive_expect_tx(&bar, (64 + kN) * kRowBytes);
    simt::bulk_tensor_copy<2>(a, &a_map, {0, 0}, &bar);
    simt::bulk_tensor_copy<2>(b, &b_map, {0, 0}, &bar);
  }
  __syncthreads();  // the barrier is initialised before anyone waits on it
  if (!skip_mbarrier_wait) simt::mbarrier_wait_parity(&bar, 0);
  float acc[kN / 2];
  for (int i = 0; i < kN / 2; ++i) acc[i] = initial;
  simt::wgmma_fence_operand(acc);
  simt::wgmma_fence();
  for (int s = 0; s < 4; ++s) {  // k-slice s starts 32 bytes into each swizzled row; 8-row atoms 1024 bytes apart
    const uint64_t desc_a = simt::wgmma_descriptor(a + 32 * s, 16, 8 * kRowBytes, simt::WgmmaSwizzle::b128);
    const uint64_t desc_b = simt::wgmma_descriptor(b + 32 * s, 16, 8 * kRowBytes, simt::WgmmaSwizzle::b128);
    simt::wgmma_mma_async<simt::MmaOperand::bf16, kN>(acc, desc_a, desc_b, s > 0);
  }
  simt::wgmma_commit_group();
  simt::wgmma_wait_group<0>();
  simt::wgmma_fence_operand(acc);
  for (int i = 0; i < kN / 2; ++i) d[t * (kN / 2) + i] = acc[i];
}

template <int kN>
void tma_wgmma(const CUtensorMap& a_map, const CUtensorMap& b_map, float initial, bool skip_mbarrier_wait, float* d,
               cudaStream_t stream) {
  simt::launch(tma_wgmma_kernel<kN>, dim3(1), dim3(128), static_cast<std::size_t>((64 + kN) * 128), stream, a_map,
               b_map, initial, skip_mbarrier_wait, d);
}
