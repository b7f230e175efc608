// Runs the threads of one block, either as fibers on the calling OS thread (fast, deterministic,
// with a schedule policy) or as one OS thread each (so ThreadSanitizer sees the races). Either way a
// thread runs until it waits at a barrier or a warp collective, or exits; once no thread of the
// block runs, BlockSync releases whatever rendezvous is complete, or reports the deadlock.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "block_sync.h"
#include "config.h"
#include "fiber.h"
#include "thread_context.h"
#include "hopper/wgmma_groups.h"

namespace simt::detail {

// A launched kernel with its arguments bound: what every thread of every block runs.
struct KernelBody {
  void (*invoke)(const void* closure);
  const void* closure;
  void operator()() const { invoke(closure); }
};

struct LaunchShape {
  dim3 grid;
  dim3 block;
  std::size_t shared_bytes;

  unsigned threads_per_block() const { return block.x * block.y * block.z; }
  uint64_t blocks() const { return uint64_t{grid.x} * grid.y * grid.z; }
};

// One block's dynamic shared memory, reused from block to block, between two guards of
// kSharedGuardBytes that no access may reach (check_shared_bounds). It starts on a 1024-byte
// boundary, the period of the largest swizzle pattern (wgmma and TMA swizzle by shared-memory
// address bits).
class DynamicSharedMemory {
 public:
  unsigned char* prepare(std::size_t bytes) {
    const std::size_t used = (bytes + sizeof(Chunk) - 1) / sizeof(Chunk);
    chunks_.resize(kGuardChunks + used + kGuardChunks);
    Chunk* const first = chunks_.data() + kGuardChunks;
    std::memset(first, 0xff, used * sizeof(Chunk));
    return reinterpret_cast<unsigned char*>(first);
  }

 private:
  struct alignas(1024) Chunk {
    unsigned char bytes[1024];
  };
  static constexpr std::size_t kGuardChunks = kSharedGuardBytes / sizeof(Chunk);
  std::vector<Chunk> chunks_;
};

// Points the calling OS thread's built-in variables at a block for as long as it runs it.
class BlockBinding {
 public:
  BlockBinding(BlockExecutor* executor, uint3 block, const LaunchShape& shape, unsigned char* dynamic_shared) {
    current_thread = ThreadContext{executor, 0, dynamic_shared, shape.shared_bytes};
    blockIdx = block;
    blockDim = shape.block;
    gridDim = shape.grid;
  }
  BlockBinding(const BlockBinding&) = delete;
  BlockBinding& operator=(const BlockBinding&) = delete;
  ~BlockBinding() { current_thread = ThreadContext{}; }

  static void bind_thread(unsigned tid, AsyncCopies* async_copies, WgmmaGroups* wgmma) {
    current_thread.tid = tid;
    current_thread.async_copies = async_copies;
    current_thread.wgmma = wgmma;
    threadIdx = unflatten(tid, blockDim);
  }
};

// splitmix64: small and well mixed, and unlike std::shuffle the same sequence on every platform.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The order in which each pass over a block visits its threads. A random schedule draws a new
// permutation per pass, seeded by the configured seed and the block index, so a result does not
// depend on which OS thread ran the block.
class PassOrder {
 public:
  PassOrder(Schedule schedule, uint64_t seed, uint64_t block_linear, unsigned n_threads)
      : schedule_(schedule), rng_(seed ^ (block_linear * 0xd1b54a32d192ed03ull)), order_(n_threads) {
    std::iota(order_.begin(), order_.end(), 0u);
    if (schedule == Schedule::reversed) std::reverse(order_.begin(), order_.end());
  }

  const std::vector<unsigned>& next() {
    if (schedule_ == Schedule::random) {
      for (std::size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[splitmix64(rng_) % i]);
    }
    return order_;
  }

 private:
  Schedule schedule_;
  uint64_t rng_;
  std::vector<unsigned> order_;
};

// Fibers kept from launch to launch: mapping and first touching a stack per thread would
// otherwise dominate short launches.
class FiberPool {
 public:
  static std::deque<Fiber> take(std::size_t stack_bytes) {
    FiberPool& pool = instance();
    std::lock_guard<std::mutex> lock(pool.mutex_);
    while (!pool.free_.empty()) {
      std::deque<Fiber> fibers = std::move(pool.free_.back());
      pool.free_.pop_back();
      if (fibers.front().stack_bytes() >= stack_bytes) return fibers;
    }
    return {};
  }

  static void give_back(std::deque<Fiber> fibers) {
    if (fibers.empty()) return;
    FiberPool& pool = instance();
    std::lock_guard<std::mutex> lock(pool.mutex_);
    pool.free_.push_back(std::move(fibers));
  }

 private:
  static FiberPool& instance() {
    static FiberPool pool;
    return pool;
  }
  std::mutex mutex_;
  std::vector<std::deque<Fiber>> free_;
};

// Runs blocks one after another on the calling OS thread, each thread of a block a fiber.
class FiberBlockRunner final : public BlockExecutor {
 public:
  FiberBlockRunner(const KernelBody& body, const LaunchShape& shape, const Config& config)
      : body_(body), shape_(shape), config_(config), fibers_(FiberPool::take(config.stack_bytes)) {
    while (fibers_.size() < shape.threads_per_block()) fibers_.emplace_back(config.stack_bytes);
  }
  FiberBlockRunner(const FiberBlockRunner&) = delete;
  FiberBlockRunner& operator=(const FiberBlockRunner&) = delete;
  ~FiberBlockRunner() { FiberPool::give_back(std::move(fibers_)); }

  void run(uint64_t block_linear) {
    const uint3 block = unflatten(block_linear, shape_.grid);
    const unsigned n = shape_.threads_per_block();
    BlockBinding binding(this, block, shape_, shared_.prepare(shape_.shared_bytes));
    sync_.reset(n);
    async_copies_.resize(n);
    wgmma_.resize(n);
    for (unsigned tid = 0; tid < n; ++tid) {
      fibers_[tid].reset(&fiber_main, this);
      async_copies_[tid].reset();
      wgmma_[tid].reset();
    }
    PassOrder order(config_.schedule, config_.seed, block_linear, n);
    // The random schedule also lands pending cp.async and bulk copies early, each at a random pass
    // boundary.
    uint64_t landing_rng = config_.seed ^ (block_linear * 0x9e6c63d0676a9a99ull);
    while (!sync_.all_exited()) {
      if (config_.schedule == Schedule::random) {
        const auto coin = [&landing_rng] { return (splitmix64(landing_rng) & 1) != 0; };
        for (AsyncCopies& copies : async_copies_) copies.land_at_random(coin);
        sync_.bulk_copies().land_at_random(coin);
      }
      for (unsigned tid : order.next()) {
        if (!sync_.is_running(tid)) continue;
        BlockBinding::bind_thread(tid, &async_copies_[tid], &wgmma_[tid]);
        fibers_[tid].resume();
        // A thread that threw leaves the others suspended mid-kernel; their stacks are simply reset.
        if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
      }
      if (!sync_.all_exited()) sync_.release_or_throw(block);
    }
  }

  void sync_threads(unsigned tid) override {
    sync_.arrive_at_barrier(tid);
    fibers_[tid].suspend();
  }

  uint64_t warp_collective(unsigned tid, const WarpCall& call) override {
    sync_.arrive_at_warp(tid, call);
    fibers_[tid].suspend();
    return sync_.warp_result(tid);
  }

  void wait_on_mbarrier(unsigned tid, const uint64_t* mbarrier, unsigned parity) override {
    sync_.wait_on_mbarrier(tid, mbarrier, parity);
    fibers_[tid].suspend();
  }

  void issue_bulk_copy(BulkCopy copy) override { sync_.bulk_copies().issue(std::move(copy)); }

 private:
  static void fiber_main(void* arg) {
    auto* self = static_cast<FiberBlockRunner*>(arg);
    const unsigned tid = current_thread.tid;
    // Exceptions cannot unwind past the fiber's first frame: hand them to the scheduler.
    try {
      self->body_();
    } catch (...) {
      self->error_ = std::current_exception();
    }
    self->sync_.exit(tid);
    self->fibers_[tid].suspend();  // for good: the next block resets the fiber
  }

  const KernelBody& body_;
  const LaunchShape& shape_;
  const Config& config_;
  std::deque<Fiber> fibers_;
  DynamicSharedMemory shared_;
  BlockSync sync_;
  std::vector<AsyncCopies> async_copies_;  // one per thread of the block
  std::vector<WgmmaGroups> wgmma_;         // one per thread of the block
  std::exception_ptr error_;
};

// Runs a block with one OS thread per CUDA thread, synchronised with a mutex and a condition
// variable that ThreadSanitizer understands. Only in SIMT_SHARED_PROCESS_WIDE builds (config.h).
class ThreadBlockRunner final : public BlockExecutor {
 public:
  ThreadBlockRunner(const KernelBody& body, const LaunchShape& shape) : body_(body), shape_(shape) {}

  void run(uint64_t block_linear) {
    block_ = unflatten(block_linear, shape_.grid);
    dynamic_shared_ = shared_.prepare(shape_.shared_bytes);
    sync_.reset(shape_.threads_per_block());
    aborted_ = false;
    std::vector<std::thread> threads;
    try {
      for (unsigned tid = 0; tid < shape_.threads_per_block(); ++tid) threads.emplace_back(&ThreadBlockRunner::thread_main, this, tid);
    } catch (const std::system_error&) {
      std::lock_guard<std::mutex> lock(mutex_);
      fail(std::current_exception());
    }
    for (std::thread& t : threads) t.join();
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

  void sync_threads(unsigned tid) override {
    std::unique_lock<std::mutex> lock(mutex_);
    sync_.arrive_at_barrier(tid);
    wait_for_release(lock, tid);
  }

  uint64_t warp_collective(unsigned tid, const WarpCall& call) override {
    std::unique_lock<std::mutex> lock(mutex_);
    sync_.arrive_at_warp(tid, call);
    wait_for_release(lock, tid);
    return sync_.warp_result(tid);
  }

  void wait_on_mbarrier(unsigned tid, const uint64_t* mbarrier, unsigned parity) override {
    std::unique_lock<std::mutex> lock(mutex_);
    sync_.wait_on_mbarrier(tid, mbarrier, parity);
    wait_for_release(lock, tid);
  }

  void issue_bulk_copy(BulkCopy copy) override {
    std::lock_guard<std::mutex> lock(mutex_);
    sync_.bulk_copies().issue(std::move(copy));
  }

 private:
  // Unwinds the CUDA threads of a block that failed elsewhere; deliberately not a std::exception.
  struct Aborted {};

  void thread_main(unsigned tid) {
    BlockBinding binding(this, block_, shape_, dynamic_shared_);
    AsyncCopies async_copies;
    WgmmaGroups wgmma;
    BlockBinding::bind_thread(tid, &async_copies, &wgmma);
    try {
      body_();
    } catch (const Aborted&) {
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      fail(std::current_exception());
    }
    std::lock_guard<std::mutex> lock(mutex_);
    sync_.exit(tid);
    settle();
  }

  void wait_for_release(std::unique_lock<std::mutex>& lock, unsigned tid) {
    settle();
    cv_.wait(lock, [&] { return aborted_ || sync_.is_running(tid); });
    if (aborted_) throw Aborted{};
  }

  // Called under the mutex after a thread stopped running: once none runs, release or fail.
  void settle() {
    if (aborted_ || sync_.running() != 0 || sync_.all_exited()) return;
    try {
      sync_.release_or_throw(block_);
    } catch (...) {
      fail(std::current_exception());
    }
    cv_.notify_all();
  }

  void fail(std::exception_ptr error) {
    if (!error_) error_ = error;
    aborted_ = true;
    cv_.notify_all();
  }

  const KernelBody& body_;
  const LaunchShape& shape_;
  uint3 block_{};
  DynamicSharedMemory shared_;
  unsigned char* dynamic_shared_ = nullptr;
  std::mutex mutex_;
  std::condition_variable cv_;
  BlockSync sync_;
  bool aborted_ = false;
  std::exception_ptr error_;
};

}  // namespace simt::detail
