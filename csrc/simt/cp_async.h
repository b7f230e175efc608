// Asynchronous global-to-shared copies, PTX's cp.async (sm_80+), written once for nvcc and the
// emulator:
//   simt::cp_async_ca<kBytes>(dst, src, src_size)   cp.async.ca.shared.global [dst], [src], kBytes, src_size
//   simt::cp_async_cg<16>(dst, src, src_size)       cp.async.cg.shared.global ... (16 bytes only)
//   simt::cp_async_commit_group()                   cp.async.commit_group
//   simt::cp_async_wait_group<N>()                  cp.async.wait_group N
//   simt::cp_async_wait_all()                       cp.async.wait_all
// kBytes is 4, 8 or 16 and both addresses are aligned to it. The copy reads src_size <= kBytes
// bytes and fills the rest of the kBytes with zeros: src_size 0 writes only zeros and reads nothing
// (padding). wait_group N returns once every committed group but the N most recent has landed;
// wait_all waits for everything issued. A landed copy is visible to the issuing thread; other
// threads see it only after a barrier that follows the wait.
//
// The emulator holds each copy in its thread's AsyncCopies (async_copies.h) until the thread waits
// for its group, so a missing wait or barrier shows as stale data.
#pragma once

#include <cstdint>

#include "simt.h"

#if !defined(__CUDACC__)
#include <string>

#include "error.h"
#include "instrument.h"
#endif

namespace simt {

namespace detail {

#if defined(__CUDACC__)
__device__ __forceinline__ unsigned shared_address(const void* pointer) {
  return static_cast<unsigned>(__cvta_generic_to_shared(pointer));
}
#else
inline void issue_async_copy(const char* form, void* dst, const void* src, unsigned cp_size, unsigned src_size) {
  const auto misaligned = [cp_size](const void* p) { return reinterpret_cast<uintptr_t>(p) % cp_size != 0; };
  if (src_size > cp_size || misaligned(dst) || (src_size != 0 && misaligned(src))) {
    throw Error(std::string("simt: ") + form + " of " + std::to_string(cp_size) + " bytes with src-size " +
                std::to_string(src_size) + ": src-size must not exceed the copy size, and both addresses must be " +
                "aligned to it");
  }
  check_shared_bounds(dst, cp_size, form);
  // A zero-filling lane still takes part in the request (reading 0 bytes), so that the requests of
  // the warp's lanes keep pairing up.
  note_access(MemorySpace::global, AccessKind::load, src, src_size);
  note_access(MemorySpace::shared, AccessKind::store, dst, cp_size);
  this_thread().async_copies->issue(dst, src, cp_size, src_size);
}
#endif

}  // namespace detail

template <int kBytes>
__device__ __forceinline__ void cp_async_ca(void* shared_dst, const void* global_src, unsigned src_size = kBytes) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async.ca copies 4, 8 or 16 bytes");
#if defined(__CUDACC__)
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(detail::shared_address(shared_dst)),
               "l"(global_src), "n"(kBytes), "r"(src_size)
               : "memory");
#else
  detail::issue_async_copy("cp.async.ca", shared_dst, global_src, kBytes, src_size);
#endif
}

// The L2-only form: bypasses L1, for data each block reads once.
template <int kBytes>
__device__ __forceinline__ void cp_async_cg(void* shared_dst, const void* global_src, unsigned src_size = kBytes) {
  static_assert(kBytes == 16, "cp.async.cg copies 16 bytes");
#if defined(__CUDACC__)
  asm volatile("cp.async.cg.shared.global [%0], [%1], %2, %3;\n" ::"r"(detail::shared_address(shared_dst)),
               "l"(global_src), "n"(kBytes), "r"(src_size)
               : "memory");
#else
  detail::issue_async_copy("cp.async.cg", shared_dst, global_src, kBytes, src_size);
#endif
}

__device__ __forceinline__ void cp_async_commit_group() {
#if defined(__CUDACC__)
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#else
  detail::this_thread().async_copies->commit();
#endif
}

template <int kNewest>
__device__ __forceinline__ void cp_async_wait_group() {
  static_assert(kNewest >= 0, "wait_group counts groups");
#if defined(__CUDACC__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kNewest) : "memory");
#else
  detail::this_thread().async_copies->wait(kNewest);
#endif
}

__device__ __forceinline__ void cp_async_wait_all() {
#if defined(__CUDACC__)
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#else
  auto& copies = *detail::this_thread().async_copies;
  copies.commit();  // PTX: wait_all is commit_group followed by wait_group 0
  copies.wait(0);
#endif
}

}  // namespace simt
