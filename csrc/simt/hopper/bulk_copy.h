// Bulk global-to-shared copies by the tensor memory accelerator, PTX's non-tensor cp.async.bulk
// (sm_90), written once for nvcc and the emulator:
//   simt::bulk_copy_global_to_shared(dst, src, bytes, bar)
//       cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [dst], [src], bytes, [bar]
//   simt::fence_proxy_async_shared()     fence.proxy.async.shared::cta
// One thread issues the copy. `bytes` is a multiple of 16 and both addresses are 16-byte aligned.
// When the bytes have landed the copy performs complete-tx(bytes) on the mbarrier `bar`: the
// issuing kernel announces them first with mbarrier_arrive_expect_tx (or mbarrier_expect_tx) and
// its threads wait on the barrier's phase before reading the destination.
//
// fence.proxy.async orders the generic proxy's shared-memory accesses (ordinary stores) with the
// async proxy's (bulk copies, wgmma operands): a kernel that writes shared memory that a later
// async-proxy operation reads, or reuses a buffer after reading it, fences in between. The
// emulator does not model proxies: there the fence does nothing.
//
// The emulator holds the copy in the block's BulkCopies (bulk_copies.h): it lands only once no
// thread can run (or at random under the random schedule), so a kernel that does not wait on the
// mbarrier reads stale shared memory. The counters (counters.h) count it as one bulk copy reading
// the 32-byte sectors its source touches. Under nvcc these are sm_90 instructions; builds for older
// GPUs compile them to a trap (hopper_asm.h).
#pragma once

#include <cstdint>

#include "../simt.h"

#if defined(__CUDACC__)
#include "hopper_asm.h"
#else
#include <string>
#include <utility>

#include "bulk_copies.h"
#include "../error.h"
#include "../instrument.h"
#include "../thread_context.h"
#endif

namespace simt {

__device__ __forceinline__ void bulk_copy_global_to_shared(void* shared_dst, const void* global_src, unsigned bytes,
                                                           uint64_t* bar) {
#if defined(__CUDACC__)
  SIMT_SM90_ASM("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                    static_cast<unsigned>(__cvta_generic_to_shared(shared_dst))),
                "l"(global_src), "r"(bytes), "r"(static_cast<unsigned>(__cvta_generic_to_shared(bar)))
                : "memory");
#else
  const auto misaligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 != 0; };
  if (bytes % 16 != 0 || misaligned(shared_dst) || misaligned(global_src)) {
    throw Error("simt: cp.async.bulk of " + std::to_string(bytes) +
                " bytes: the size is a multiple of 16 and both addresses are 16-byte aligned");
  }
  detail::BulkCopy copy{
      {{static_cast<unsigned char*>(shared_dst), static_cast<const unsigned char*>(global_src), bytes, 0}}, bar,
      bytes};
  detail::note_bulk_copy(copy);
  detail::this_thread().block->issue_bulk_copy(std::move(copy));
#endif
}

__device__ __forceinline__ void fence_proxy_async_shared() {
#if defined(__CUDACC__)
  SIMT_SM90_ASM("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

}  // namespace simt
