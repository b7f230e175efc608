// What the device-side functions (__syncthreads, the warp collectives, dynamic shared memory) need to
// know about the CUDA thread calling them, and the CUDA built-in variables. All of it is
// thread-local: in fiber mode the block scheduler rewrites it before resuming each fiber, in
// OS-thread mode every CUDA thread has its own.
#pragma once

#include <vector_types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "async_copies.h"
#include "block_sync.h"
#include "hopper/bulk_copies.h"
#include "error.h"

namespace simt::detail {

class WgmmaGroups;

// How a thread of the running block waits: a fiber switches back to its scheduler, an OS thread
// blocks on a condition variable. Both arrive at the same BlockSync, which also holds the block's
// bulk copies in flight.
class BlockExecutor {
 public:
  virtual void sync_threads(unsigned tid) = 0;
  virtual uint64_t warp_collective(unsigned tid, const WarpCall& call) = 0;
  virtual void wait_on_mbarrier(unsigned tid, const uint64_t* mbarrier, unsigned parity) = 0;
  virtual void issue_bulk_copy(BulkCopy copy) = 0;

 protected:
  ~BlockExecutor() = default;
};

struct ThreadContext {
  BlockExecutor* block = nullptr;
  unsigned tid = 0;  // linear thread index in the block: x fastest, as CUDA forms warps
  unsigned char* dynamic_shared = nullptr;
  std::size_t dynamic_shared_bytes = 0;
  AsyncCopies* async_copies = nullptr;  // the thread's pending cp.async copies, owned by its block runner
  WgmmaGroups* wgmma = nullptr;         // the thread's pending wgmma.mma_async, owned by its block runner
};

inline thread_local ThreadContext current_thread;

inline ThreadContext& this_thread() {
  if (current_thread.block == nullptr) throw Error("simt: a device function was called outside a kernel launch");
  return current_thread;
}

// The bytes either side of a block's dynamic shared memory that the emulator keeps (and never
// fills): a shared-memory access that reaches them is out of bounds, as compute-sanitizer's
// memcheck reports on a GPU, instead of reading whatever lies past the allocation.
constexpr std::size_t kSharedGuardBytes = 16 * 1024;

// Throws where the `bytes` at `address`, which the calling thread accesses (`what`) in shared
// memory, lie partly or wholly in the guards around its block's dynamic shared memory. (Static
// __shared__ variables live elsewhere; the guards catch an index run off either end of the
// dynamic allocation.)
inline void check_shared_bounds(const void* address, std::size_t bytes, const char* what) {
  const ThreadContext& thread = this_thread();
  const auto begin = reinterpret_cast<std::uintptr_t>(thread.dynamic_shared);
  const auto end = begin + thread.dynamic_shared_bytes;
  const auto first = reinterpret_cast<std::uintptr_t>(address), last = first + bytes;
  const bool near = last > begin - kSharedGuardBytes && first < end + kSharedGuardBytes;
  if (near && (first < begin || last > end)) {
    const auto offset = static_cast<std::intptr_t>(first - begin);
    throw Error(std::string("simt: ") + what + " of " + std::to_string(bytes) + " bytes at byte offset " +
                std::to_string(offset) + " of the block's " + std::to_string(thread.dynamic_shared_bytes) +
                " bytes of dynamic shared memory: out of bounds (thread " + std::to_string(thread.tid) + ")");
  }
}

inline uint3 unflatten(uint64_t index, dim3 extent) {
  return make_uint3(static_cast<unsigned>(index % extent.x), static_cast<unsigned>(index / extent.x % extent.y),
                    static_cast<unsigned>(index / (uint64_t{extent.x} * extent.y)));
}

}  // namespace simt::detail

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
inline constexpr int warpSize = static_cast<int>(simt::detail::kWarpSize);
