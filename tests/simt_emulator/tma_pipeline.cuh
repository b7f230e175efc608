// The producer/consumer pipeline of a warp-specialised Hopper mainloop: thread 0 (the producer)
// fills kPipeStages shared-memory stages with tensor copies, each stage's full barrier counting the
// bytes; warps 1-3 (the consumers) wait for a stage, read it and release it on its empty barrier,
// which the producer waits on before refilling the stage. Tile i uses stage i % kPipeStages for the
// (i / kPipeStages)-th time: its phases have parity (i / kPipeStages) % 2.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "hopper/bulk_tensor_copy.h"
#include "hopper/mbarrier.h"
#include "simt.h"

constexpr int kPipeStages = 3, kPipeTiles = 10, kPipeTileRows = 8, kPipeTileCols = 32;
constexpr int kPipeTileFloats = kPipeTileRows * kPipeTileCols;

// map: a float matrix of kPipeTileCols columns, block b's tiles its rows from b kPipeTiles
// kPipeTileRows on. out[96 b + c]: consumer c's sum of tile elements c, c + 96 and c + 192 over all
// tiles. kReleaseStages false: the consumers never arrive on the empty barriers (a planted error).
template <bool kReleaseStages>
__global__ void tma_pipeline_kernel(const __grid_constant__ CUtensorMap map, float* out) {
  __shared__ uint64_t full[kPipeStages], empty[kPipeStages];
  SIMT_DYNAMIC_SHARED(float, stages);  // [kPipeStages][kPipeTileFloats]
  const int t = threadIdx.x;
  if (t == 0) {
    for (int s = 0; s < kPipeStages; ++s) {
      simt::mbarrier_init(&full[s], 1);
      simt::mbarrier_init(&empty[s], 96);
    }
  }
  __syncthreads();
  if (t == 0) {
    for (int i = 0; i < kPipeTiles; ++i) {
      const int s = i % kPipeStages;
      const unsigned parity = i / kPipeStages % 2;
      simt::mbarrier_wait_parity(&empty[s], parity ^ 1);  // the first round passes: the phase before counts as done
      simt::mbarrier_arrive_expect_tx(&full[s], kPipeTileFloats * sizeof(float));
      const int row = (static_cast<int>(blockIdx.x) * kPipeTiles + i) * kPipeTileRows;
      simt::bulk_tensor_copy<2>(stages + s * kPipeTileFloats, &map, {0, row}, &full[s]);
    }
  } else if (t >= 32) {
    const int c = t - 32;
    float sum = 0;
    for (int i = 0; i < kPipeTiles; ++i) {
      const int s = i % kPipeStages;
      simt::mbarrier_wait_parity(&full[s], i / kPipeStages % 2);
      for (int e = c; e < kPipeTileFloats; e += 96) sum += stages[s * kPipeTileFloats + e];
      if (kReleaseStages) simt::mbarrier_arrive(&empty[s]);
    }
    out[blockIdx.x * 96 + c] = sum;
  }
}

template <bool kReleaseStages>
void tma_pipeline(const CUtensorMap& map, int blocks, float* out, cudaStream_t stream) {
  simt::launch(tma_pipeline_kernel<kReleaseStages>, dim3(blocks), dim3(128),
               kPipeStages * kPipeTileFloats * sizeof(float), stream, map, out);
}
