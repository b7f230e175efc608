// simt::launch: the emulator's <<<grid, block, shared_bytes, stream>>>. Blocks are handed out from
// an atomic counter to `block_threads` OS threads (the caller among them), each running its blocks
// as fibers; or, in OS-thread mode, run one at a time with an OS thread per CUDA thread. The first
// error of any block is rethrown once every OS thread is done. Launches are synchronous.
#pragma once

#include <driver_types.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "block_scheduler.h"
#include "config.h"
#include "counters.h"
#include "error.h"
#include "thread_context.h"

namespace simt::detail {

inline void check_launch(const LaunchShape& shape, const Config& config) {
  const dim3 g = shape.grid;
  const dim3 b = shape.block;
  const uint32_t* max = config.max_grid;
  if (g.x == 0 || g.y == 0 || g.z == 0 || b.x == 0 || b.y == 0 || b.z == 0 || b.z > 64 || g.x > max[0] ||
      g.y > max[1] || g.z > max[2] || uint64_t{b.x} * b.y * b.z > 1024) {
    throw Error("simt: invalid launch configuration: grid (" + std::to_string(g.x) + "," + std::to_string(g.y) + "," +
                std::to_string(g.z) + "), block (" + std::to_string(b.x) + "," + std::to_string(b.y) + "," +
                std::to_string(b.z) + "); a grid holds 1 to (" + std::to_string(max[0]) + "," +
                std::to_string(max[1]) + "," + std::to_string(max[2]) + ") blocks, a block 1 to 1024 threads");
  }
  // The most dynamic shared memory any current GPU lets a block opt in to (sm_90: 227 KiB); a
  // launch past it fails on hardware, so it fails here too.
  constexpr std::size_t kMaxDynamicSharedBytes = 227 * 1024;
  if (shape.shared_bytes > kMaxDynamicSharedBytes) {
    throw Error("simt: invalid launch configuration: " + std::to_string(shape.shared_bytes) +
                " bytes of dynamic shared memory; a block may have at most " +
                std::to_string(kMaxDynamicSharedBytes));
  }
  if (current_thread.block != nullptr) throw Error("simt: a kernel cannot launch a kernel (no dynamic parallelism)");
}

inline void check_mode(Mode mode) {
#if defined(SIMT_TSAN)
  if (mode == Mode::fibers) {
    throw Error("simt: fiber switches are invisible to ThreadSanitizer; use SIMT_MODE=threads in a TSan build");
  }
#elif !defined(SIMT_SHARED_PROCESS_WIDE)
  if (mode == Mode::os_threads) {
    throw Error("simt: OS-thread mode needs a build with -DSIMT_ENABLE_OS_THREADS (automatic under "
                "-fsanitize=thread): in this build __shared__ variables are per OS thread, not per block");
  }
#endif
}

inline unsigned parallel_blocks(const Config& config, uint64_t blocks) {
#if defined(SIMT_SHARED_PROCESS_WIDE)
  (void)config;
  (void)blocks;
  return 1;
#else
  const unsigned wanted = config.block_threads != 0 ? config.block_threads : std::thread::hardware_concurrency();
  return static_cast<unsigned>(std::min<uint64_t>(blocks, std::max(wanted, 1u)));
#endif
}

inline void run_on_fibers(const KernelBody& body, const LaunchShape& shape, const Config& config) {
  const uint64_t blocks = shape.blocks();
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::exception_ptr error;
  const auto work = [&] {
    try {
      FiberBlockRunner runner(body, shape, config);
      for (uint64_t b = next++; b < blocks && !failed; b = next++) runner.run(b);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  std::vector<std::thread> helpers;
  for (unsigned i = 1; i < parallel_blocks(config, blocks); ++i) helpers.emplace_back(work);
  work();
  for (std::thread& t : helpers) t.join();
  if (error) std::rethrow_exception(error);
}

inline void run_grid(const KernelBody& body, const LaunchShape& shape) {
  const Config config = simt::config();
  check_launch(shape, config);
  check_mode(config.mode);
#if defined(SIMT_SHARED_PROCESS_WIDE)
  // One block at a time in the whole process: __shared__ variables are plain statics.
  static std::mutex one_block_at_a_time;
  std::lock_guard<std::mutex> lock(one_block_at_a_time);
#endif
  if (config.mode == Mode::fibers) return run_on_fibers(body, shape, config);
  ThreadBlockRunner runner(body, shape);
  for (uint64_t b = 0; b < shape.blocks(); ++b) runner.run(b);
}

}  // namespace simt::detail

namespace simt {

// The largest grid a launch may have (x, y, z): CUDA's, unless set_max_grid lowered it.
inline dim3 max_grid() {
  const Config c = config();
  return dim3(c.max_grid[0], c.max_grid[1], c.max_grid[2]);
}

// Whether the emulated GPU runs the wgmma kernels: SIMT_ARCH=sm_90a, or set_arch("sm_90a").
inline bool device_runs_wgmma() { return config().sm90a; }

// The emulated GPU's number of SMs: Config::multiprocessors.
inline unsigned multiprocessor_count() { return config().multiprocessors; }

// Launches kernel<<<grid, block, shared_bytes, stream>>>(args...) and returns when it finished;
// the stream is ignored. The arguments are converted to the kernel's parameter types once, as a
// launch copies them, and every CUDA thread gets its own copy.
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared_bytes, cudaStream_t /*stream*/,
            Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "simt::launch: wrong number of kernel arguments");
  const std::tuple<Params...> params(std::forward<Args>(args)...);
  const auto call = [&] { std::apply(kernel, params); };
  const detail::KernelBody body{[](const void* closure) { (*static_cast<decltype(&call)>(closure))(); }, &call};
  const detail::CountedLaunch counted(reinterpret_cast<const void*>(kernel));
  detail::run_grid(body, detail::LaunchShape{grid, block, shared_bytes});
}

}  // namespace simt
