// Shared-memory barriers with phases and transaction counts, PTX's mbarrier (sm_90 forms, CTA
// scope), written once for nvcc and the emulator:
//   simt::mbarrier_init(bar, count)                    mbarrier.init.shared::cta.b64 [bar], count
//   simt::fence_mbarrier_init()                        fence.mbarrier_init.release.cluster
//   simt::mbarrier_inval(bar)                          mbarrier.inval.shared::cta.b64 [bar]
//   simt::mbarrier_arrive(bar)                         mbarrier.arrive.shared::cta.b64
//   simt::mbarrier_arrive_expect_tx(bar, bytes)        mbarrier.arrive.expect_tx.shared::cta.b64
//   simt::mbarrier_expect_tx(bar, bytes)               mbarrier.expect_tx.relaxed.cta.shared::cta.b64
//   simt::mbarrier_complete_tx(bar, bytes)             mbarrier.complete_tx.relaxed.cta.shared::cta.b64
//   simt::mbarrier_test_wait_parity(bar, parity)       mbarrier.test_wait.parity.shared::cta.b64
//   simt::mbarrier_try_wait_parity(bar, parity)        mbarrier.try_wait.parity.shared::cta.b64
//   simt::mbarrier_wait_parity(bar, parity)            try_wait.parity until it succeeds
// `bar` is a uint64_t in shared memory, 8-byte aligned. init sets the arrivals each phase expects
// (1 to 2^20 - 1) and starts the phase of parity 0. A phase completes once all its arrivals have
// happened and its transaction count (bytes announced by expect_tx, less bytes delivered by
// complete_tx, which bulk copies perform when they land) is back to zero. The arrives discard
// PTX's opaque state token: kernels track their phases, and the waits take the parity of the phase
// to wait for, true once that phase has completed (a consumer waits for parity 0, then 1, 0, ... as
// its stages come round).
//
// In the emulator a try_wait that would fail suspends its thread until the phase completes (so
// other warps progress; a phase that can never complete is a reported deadlock), then succeeds.
// test_wait never suspends: spin on try_wait (or mbarrier_wait_parity), never on test_wait.
// Under nvcc these are sm_90 instructions; builds for older GPUs compile them to a trap
// (hopper_asm.h).
#pragma once

#include <cstdint>

#include "../simt.h"

#if defined(__CUDACC__)
#include "hopper_asm.h"
#else
#include "mbarrier_state.h"
#include "../thread_context.h"
#endif

namespace simt {

#if defined(__CUDACC__)
namespace detail {
__device__ __forceinline__ unsigned mbarrier_address(const uint64_t* bar) {
  return static_cast<unsigned>(__cvta_generic_to_shared(bar));
}
}  // namespace detail
// A wait's predicate, as 0 or 1.
#define SIMT_MBARRIER_WAIT(instruction, bar, parity, done)                                                    \
  SIMT_SM90_ASM("{\n .reg .pred p;\n " instruction " p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n" : "=r"(done) \
                : "r"(detail::mbarrier_address(bar)), "r"(parity)                                             \
                : "memory")
#endif

__device__ __forceinline__ void mbarrier_init(uint64_t* bar, unsigned count) {
#if defined(__CUDACC__)
  SIMT_SM90_ASM("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(detail::mbarrier_address(bar)), "r"(count)
                : "memory");
#else
  detail::init_mbarrier(bar, count);
#endif
}

// fence.mbarrier_init.release.cluster: makes the thread's mbarrier_inits visible to the async
// proxy (tensor copies completing on those barriers) and to the cluster, before the barrier that
// lets other threads use them. The emulator does not model proxies: there it does nothing.
__device__ __forceinline__ void fence_mbarrier_init() {
#if defined(__CUDACC__)
  SIMT_SM90_ASM("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void mbarrier_inval(uint64_t* bar) {
#if defined(__CUDACC__)
  SIMT_SM90_ASM("mbarrier.inval.shared::cta.b64 [%0];\n" ::"r"(detail::mbarrier_address(bar)) : "memory");
#else
  detail::invalidate_mbarrier(bar);
#endif
}

__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
#if defined(__CUDACC__)
  SIMT_SM90_ASM("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(detail::mbarrier_address(bar)) : "memory");
#else
  detail::arrive_on_mbarrier(bar, "mbarrier.arrive", 1, 0);
#endif
}

__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, unsigned bytes) {
#if defined(__CUDACC__)
  SIMT_SM90_ASM("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(detail::mbarrier_address(bar)),
                "r"(bytes)
                : "memory");
#else
  detail::arrive_on_mbarrier(bar, "mbarrier.arrive.expect_tx", 1, bytes);
#endif
}

__device__ __forceinline__ void mbarrier_expect_tx(uint64_t* bar, unsigned bytes) {
#if defined(__CUDACC__)
  SIMT_SM90_ASM("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(detail::mbarrier_address(bar)),
                "r"(bytes)
                : "memory");
#else
  detail::arrive_on_mbarrier(bar, "mbarrier.expect_tx", 0, bytes);
#endif
}

__device__ __forceinline__ void mbarrier_complete_tx(uint64_t* bar, unsigned bytes) {
#if defined(__CUDACC__)
  SIMT_SM90_ASM("mbarrier.complete_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(detail::mbarrier_address(bar)),
                "r"(bytes)
                : "memory");
#else
  detail::complete_tx_on_mbarrier(bar, "mbarrier.complete_tx", bytes);
#endif
}

__device__ __forceinline__ bool mbarrier_test_wait_parity(uint64_t* bar, unsigned parity) {
#if defined(__CUDACC__)
  unsigned done = 0;
  SIMT_MBARRIER_WAIT("mbarrier.test_wait.parity.shared::cta.b64", bar, parity, done);
  return done != 0;
#else
  return detail::mbarrier_phase_completed(bar, parity, "mbarrier.test_wait.parity");
#endif
}

__device__ __forceinline__ bool mbarrier_try_wait_parity(uint64_t* bar, unsigned parity) {
#if defined(__CUDACC__)
  unsigned done = 0;
  SIMT_MBARRIER_WAIT("mbarrier.try_wait.parity.shared::cta.b64", bar, parity, done);
  return done != 0;
#else
  if (!detail::mbarrier_phase_completed(bar, parity, "mbarrier.try_wait.parity")) {
    const detail::ThreadContext& thread = detail::this_thread();
    thread.block->wait_on_mbarrier(thread.tid, bar, parity);
  }
  return true;
#endif
}

__device__ __forceinline__ void mbarrier_wait_parity(uint64_t* bar, unsigned parity) {
  while (!mbarrier_try_wait_parity(bar, parity)) {
  }
}

#if defined(__CUDACC__)
#undef SIMT_MBARRIER_WAIT
#endif

}  // namespace simt
