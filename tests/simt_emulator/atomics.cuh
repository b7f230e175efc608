// atomicAdd from every thread of many blocks, which the emulator runs on several OS threads.
#pragma once

#include "simt.h"

// Every thread takes a ticket (the old value of *next_ticket) and marks it; the tickets of a correct
// atomicAdd are exactly 0 .. threads-1. Sums in every supported type; half and bfloat16 once per
// block, where their precision keeps the total exact.
__global__ void tickets_and_sums_kernel(int* next_ticket, int* taken, unsigned* sum_u, unsigned long long* sum_ull,
                                        float* sum_f, double* sum_d, __half* sum_h, __nv_bfloat16* sum_bf) {
  taken[atomicAdd(next_ticket, 1)] += 1;
  atomicAdd(sum_u, 2u);
  atomicAdd(sum_ull, 3ull);
  atomicAdd(sum_f, 0.5f);
  atomicAdd(sum_d, 0.25);
  if (threadIdx.x == 0) {
    atomicAdd(sum_h, __float2half(1.0f));
    atomicAdd(sum_bf, __float2bfloat16(1.0f));
  }
}

inline void tickets_and_sums(int* next_ticket, int* taken, unsigned* sum_u, unsigned long long* sum_ull, float* sum_f,
                             double* sum_d, __half* sum_h, __nv_bfloat16* sum_bf, int blocks, int threads,
                             cudaStream_t stream) {
  simt::launch(tickets_and_sums_kernel, dim3(blocks), dim3(threads), 0, stream, next_ticket, taken, sum_u, sum_ull,
               sum_f, sum_d, sum_h, sum_bf);
}
