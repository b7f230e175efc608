// cp.async: every copy form (.ca 4/8/16, .cg 16, partial and zero src-size), the wait_group
// arithmetic, and two broken kernels, one without the wait and one without the barrier after it,
// that read stale shared memory (the emulator lands a copy only when its thread waits for it).
#pragma once

#include <cstdint>

#include "cp_async.h"
#include "simt.h"

// One copy a thread makes: the form (0: .ca, 1: .cg), the copy size, and the source's size and
// byte offset. The copy lands in the thread's own 16-byte slot of shared memory.
struct CopyForm {
  int cache_global;
  int bytes;
  int src_size;
  int src_offset;
};

// out[16t .. 16t+15] = thread t's slot after its copy: 0xab bytes where the copy wrote nothing.
__global__ void copy_forms_kernel(const CopyForm* forms, const unsigned char* src, unsigned char* out) {
  __shared__ __align__(16) unsigned char slots[32 * 16];
  const int t = threadIdx.x;
  for (int b = 0; b < 16; ++b) slots[16 * t + b] = 0xab;
  const CopyForm form = forms[t];
  unsigned char* dst = slots + 16 * t;
  const unsigned char* from = src + form.src_offset;
  const unsigned size = static_cast<unsigned>(form.src_size);
  if (form.cache_global) {
    simt::cp_async_cg<16>(dst, from, size);
  } else if (form.bytes == 4) {
    simt::cp_async_ca<4>(dst, from, size);
  } else if (form.bytes == 8) {
    simt::cp_async_ca<8>(dst, from, size);
  } else {
    simt::cp_async_ca<16>(dst, from, size);
  }
  simt::cp_async_wait_all();
  for (int b = 0; b < 16; ++b) out[16 * t + b] = slots[16 * t + b];
}

// Three groups per thread, each one int into its own array; after wait_group 2, 1 and 0 the thread
// records what the three arrays hold: out[9t + 3w + g] = array g after the w-th wait.
__global__ void staged_groups_kernel(const int* src, int* out) {
  __shared__ int stages[3][32];
  const int t = threadIdx.x;
  for (int g = 0; g < 3; ++g) {
    stages[g][t] = -1;
    simt::cp_async_ca<4>(&stages[g][t], src + 32 * g + t);
    simt::cp_async_commit_group();
  }
  const auto record = [&](int w) {
    for (int g = 0; g < 3; ++g) out[9 * t + 3 * w + g] = stages[g][t];
  };
  simt::cp_async_wait_group<2>();
  record(0);
  simt::cp_async_wait_group<1>();
  record(1);
  simt::cp_async_wait_group<0>();
  record(2);
}

// out[i] = in[block end - 1 - i]: each thread copies one int into shared memory with cp.async and
// reads another thread's. Correct only with both the wait and the barrier.
template <bool kWait, bool kBarrier>
__global__ void reverse_through_cp_async_kernel(const int* in, int* out) {
  SIMT_DYNAMIC_SHARED(int, tile);  // 0xff bytes at the start of each block: -1 until a copy lands
  const int t = threadIdx.x, n = blockDim.x;
  const int base = blockIdx.x * n;
  simt::cp_async_ca<4>(&tile[t], in + base + t);
  simt::cp_async_commit_group();
  if (kWait) simt::cp_async_wait_group<0>();
  if (kBarrier) __syncthreads();
  out[base + t] = tile[n - 1 - t];
}

inline void copy_forms(const CopyForm* forms, const unsigned char* src, unsigned char* out, int threads,
                       cudaStream_t stream) {
  simt::launch(copy_forms_kernel, dim3(1), dim3(threads), 0, stream, forms, src, out);
}
inline void staged_groups(const int* src, int* out, cudaStream_t stream) {
  simt::launch(staged_groups_kernel, dim3(1), dim3(32), 0, stream, src, out);
}
template <bool kWait, bool kBarrier>
void reverse_through_cp_async(const int* in, int* out, int blocks, cudaStream_t stream) {
  simt::launch(reverse_through_cp_async_kernel<kWait, kBarrier>, dim3(blocks), dim3(128), 128 * sizeof(int), stream,
               in, out);
}
