// Kernels with planted memory and math patterns whose counter values are known exactly
// (driver.cpp checks them): each launch is one block; every access goes through simt's accessors.
#pragma once

#include "simt.h"

// One warp: lane i loads in[i * stride] and stores it to out[i]. stride 1: 4 sectors a request
// (32 floats = 128 bytes); stride 8 (32 bytes): 32 sectors a request.
__global__ void strided_copy(const float* __restrict__ in, float* __restrict__ out, int stride) {
  const int lane = threadIdx.x;
  simt::st_global(out + lane, simt::ld_global(in + lane * stride));
}

// One warp writes, then reads, a column of a 32 x width tile: with width 32 every lane hits the
// same bank (32 wavefronts a request), with width 33 (a padded tile) each lane its own (1).
template <int kWidth>
__global__ void tile_column(float* __restrict__ out) {
  __shared__ float tile[32][kWidth];
  const int lane = threadIdx.x;
  simt::st_shared(&tile[lane][0], static_cast<float>(lane));
  __syncwarp();
  simt::st_global(out + lane, simt::ld_shared(&tile[lane][0]));
}

// One warp reads a 128-bit vector each from consecutive addresses (4 wavefronts a request: a phase
// per quarter-warp, none conflicting), then every lane the same 4-byte word (a broadcast: 1).
__global__ void vector_and_broadcast(float* __restrict__ out) {
  __shared__ float4 vectors[32];
  const int lane = threadIdx.x;
  simt::st_shared(&vectors[lane], make_float4(lane, lane, lane, lane));
  __syncwarp();
  const float4 v = simt::ld_shared(&vectors[lane]);
  const float first = simt::ld_shared(&vectors[0].y);
  simt::st_global(out + lane, v.x + first);
}

// One warp reads 64-bit values from consecutive addresses (2 wavefronts: a phase per half-warp),
// then 128-bit ones 32 bytes apart, so that the 8 lanes of each quarter-warp phase span 256 bytes
// and hit every bank twice (2 wavefronts a phase, 8 in all).
__global__ void wide_shared_reads(float* __restrict__ out) {
  __shared__ float4 vectors[64];
  const int lane = threadIdx.x;
  simt::st_shared(&vectors[lane], make_float4(lane, lane, lane, lane));
  simt::st_shared(&vectors[lane + 32], make_float4(lane, lane, lane, lane));
  __syncwarp();
  const float2 pair = simt::ld_shared(reinterpret_cast<const float2*>(vectors) + lane);
  const float4 strided = simt::ld_shared(&vectors[2 * lane]);
  simt::st_global(out + lane, pair.x + strided.w);
}

// One warp stores 3 rows of 40 floats at a 40-float pitch, items lane and lane + 32 of a row: lanes
// 0-7 store twice a row, the others once. With the rows' trips named (simt::LoopTrip), a row is 2
// requests that conflict nowhere; unnamed, the counters group each lane's k-th store since the
// barrier, lane 0's second of row 0 (words 32-39) with lane 24's first of row 1 (64-71): 2
// requests of the 6 take a wavefront more.
template <bool kNamedTrips>
__global__ void uneven_rows(float* __restrict__ out) {
  __shared__ float rows[3 * 40];
  const int lane = threadIdx.x;
  for (int row = 0; row < 3; ++row) {
    const auto stage = [&] {
      for (int i = lane; i < 40; i += 32) simt::st_shared(&rows[row * 40 + i], static_cast<float>(i));
    };
    if constexpr (kNamedTrips) {
      const simt::LoopTrip trip(row);
      stage();
    } else {
      stage();
    }
  }
  __syncwarp();
  simt::st_global(out + lane, simt::ld_shared(&rows[lane]));
}

// Three barriers per block; every thread notes 5 float and 2 double FMAs.
__global__ void barriers_and_fma(float* __restrict__ out) {
  __syncthreads();
  simt::note_fma<float>(5);
  __syncthreads();
  simt::note_fma<double>(2);
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
}

inline void launch_strided_copy(const float* in, float* out, int stride) {
  simt::launch(strided_copy, dim3(1), dim3(32), 0, nullptr, in, out, stride);
}

inline void launch_tile_column(float* out, bool padded) {
  simt::launch(padded ? tile_column<33> : tile_column<32>, dim3(1), dim3(32), 0, nullptr, out);
}

inline void launch_vector_and_broadcast(float* out) {
  simt::launch(vector_and_broadcast, dim3(1), dim3(32), 0, nullptr, out);
}

inline void launch_wide_shared_reads(float* out) {
  simt::launch(wide_shared_reads, dim3(1), dim3(32), 0, nullptr, out);
}

inline void launch_uneven_rows(float* out, bool named_trips) {
  simt::launch(named_trips ? uneven_rows<true> : uneven_rows<false>, dim3(1), dim3(32), 0, nullptr, out);
}

inline void launch_barriers_and_fma(float* out, int blocks, int threads) {
  simt::launch(barriers_and_fma, dim3(blocks), dim3(threads), 0, nullptr, out);
}
