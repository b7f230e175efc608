// ldmatrix .x1/.x2/.x4, plain and .trans: one warp loads matrices of 16-bit elements from shared
// memory rows that the host places (strided and out of order), and stores what each lane received.
#pragma once

#include <cstdint>

#include "ldmatrix.h"
#include "simt.h"

// Planted errors, to show that the layout checks fail when a fragment is wrong.
enum class FragmentPlant { none, swap_registers };

constexpr int kMatrixArena = 768;  // 16-bit elements of shared memory the rows are placed in

// arena: the shared memory image; row_of_lane[l]: the element offset of the row lane l names;
// out[kMatrices * l + i]: register i of lane l.
template <int kMatrices, bool kTransposed>
__global__ void load_matrices_kernel(const uint16_t* arena, const int* row_of_lane, uint32_t* out,
                                     FragmentPlant plant) {
  __shared__ __align__(16) uint16_t tile[kMatrixArena];
  const int lane = threadIdx.x;
  for (int e = lane; e < kMatrixArena; e += 32) tile[e] = arena[e];
  __syncthreads();
  uint32_t fragment[kMatrices];
  if (kTransposed) {
    simt::ldmatrix_trans<kMatrices>(fragment, tile + row_of_lane[lane]);
  } else {
    simt::ldmatrix<kMatrices>(fragment, tile + row_of_lane[lane]);
  }
  if (plant == FragmentPlant::swap_registers) {
    if (kMatrices == 1) {
      fragment[0] = fragment[0] >> 16 | fragment[0] << 16;
    } else {
      const uint32_t first = fragment[0];
      fragment[0] = fragment[1];
      fragment[1 % kMatrices] = first;
    }
  }
  for (int i = 0; i < kMatrices; ++i) out[kMatrices * lane + i] = fragment[i];
}

template <int kMatrices, bool kTransposed>
void load_matrices(const uint16_t* arena, const int* row_of_lane, uint32_t* out, FragmentPlant plant,
                   cudaStream_t stream) {
  simt::launch(load_matrices_kernel<kMatrices, kTransposed>, dim3(1), dim3(32), 0, stream, arena, row_of_lane, out,
               plant);
}
