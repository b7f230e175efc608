// wgmma.mma_async: one warpgroup multiplies A (64 x K) by B (K x kN), each K-major or MN-major,
// from a shared-memory image the host laid out by the PTX ISA's tables, in k-slices of 32 bytes,
// accumulating onto C, and stores each thread's accumulators.
#pragma once

#include <cstdint>

#include "hopper/bulk_copy.h"
#include "simt.h"
#include "hopper/wgmma.h"

// Planted errors, which must make the layout checks fail (or, skip_fence, be reported).
enum class WgmmaPlant { none, wrong_swizzle, swap_lbo_sbo, swap_d, skip_wait, skip_fence };

// Where one operand lies in the image, and how its descriptor for k-slice s is made.
struct WgmmaOperandPlace {
  int offset;      // bytes from the start of shared memory to k-slice 0
  int slice_step;  // bytes the descriptor's start advances per k-slice
  unsigned lbo, sbo;
};

struct WgmmaTile {
  WgmmaOperandPlace a, b;
  simt::WgmmaSwizzle swizzle;
  int k_slices;
};

// c and d: thread t's kN / 2 accumulators at t * kN / 2.
template <simt::MmaOperand kType, int kN, simt::WgmmaMajor kMajorA, simt::WgmmaMajor kMajorB>
__global__ void wgmma_kernel(const unsigned char* image, int image_bytes, WgmmaTile tile, const float* c, float* d,
                             WgmmaPlant plant) {
  SIMT_DYNAMIC_SHARED(unsigned char, smem);
  const int t = threadIdx.x;
  for (int i = t; i < image_bytes; i += blockDim.x) smem[i] = image[i];
  __syncthreads();
  simt::fence_proxy_async_shared();  // ordinary stores, then the async proxy reads
  float acc[kN / 2];
  for (int i = 0; i < kN / 2; ++i) acc[i] = c[t * (kN / 2) + i];
  simt::wgmma_fence_operand(acc);
  if (plant != WgmmaPlant::skip_fence) simt::wgmma_fence();
  // wrong_swizzle: none -> 128B -> 64B -> 32B -> 128B
  const simt::WgmmaSwizzle swizzle = plant == WgmmaPlant::wrong_swizzle
                                         ? static_cast<simt::WgmmaSwizzle>(static_cast<unsigned>(tile.swizzle) % 3 + 1)
                                         : tile.swizzle;
  const auto descriptor = [&](const WgmmaOperandPlace& place, int slice) {
    const unsigned lbo = plant == WgmmaPlant::swap_lbo_sbo ? place.sbo : place.lbo;
    const unsigned sbo = plant == WgmmaPlant::swap_lbo_sbo ? place.lbo : place.sbo;
    return simt::wgmma_descriptor(smem + place.offset + slice * place.slice_step, lbo, sbo, swizzle);
  };
  for (int s = 0; s < tile.k_slices; ++s) {
    simt::wgmma_mma_async<kType, kN, kMajorA, kMajorB>(acc, descriptor(tile.a, s), descriptor(tile.b, s), true);
  }
  simt::wgmma_commit_group();
  if (plant != WgmmaPlant::skip_wait) simt::wgmma_wait_group<0>();
  simt::wgmma_fence_operand(acc);
  if (plant == WgmmaPlant::swap_d) {
    const float first = acc[0];
    acc[0] = acc[1];
    acc[1] = first;
  }
  for (int i = 0; i < kN / 2; ++i) d[t * (kN / 2) + i] = acc[i];
}

template <simt::MmaOperand kType, int kN, simt::WgmmaMajor kMajorA, simt::WgmmaMajor kMajorB>
void warpgroup_multiply(const unsigned char* image, int image_bytes, const WgmmaTile& tile, const float* c, float* d,
                        WgmmaPlant plant, cudaStream_t stream) {
  simt::launch(wgmma_kernel<kType, kN, kMajorA, kMajorB>, dim3(1), dim3(128), static_cast<std::size_t>(image_bytes),
               stream, image, image_bytes, tile, c, d, plant);
}
