// How the emulator runs a launch: the order in which a block's threads are scheduled, whether they
// are fibers or OS threads, and how many blocks run at once. Settable from code (set_config) and,
// for the initial value, from the environment:
//
//   SIMT_SCHEDULE=forward|reversed|random[:SEED]   order of the runnable threads in each pass
//   SIMT_MODE=fibers|threads                        threads: one OS thread per CUDA thread
//   SIMT_BLOCK_THREADS=N                            OS threads running blocks (fibers); 0 = per core
//   SIMT_STACK_KB=N                                 stack of each fiber
//   SIMT_ARCH=sm_80|sm_90a                          the GPU the kernels' host code sees (sm_80)
//   SIMT_REPORT_CONFLICTS=1                         counted shared requests with bank conflicts are
//                                                   reported on stderr, with their source line
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>

#include "error.h"

// Build switch. By default a static __shared__ variable lives in thread-local storage: all fibers
// of a block run on one OS thread, and each OS thread runs its blocks one after another, so
// "per OS thread" is "per block in flight". One OS thread per CUDA thread breaks that, so OS-thread
// mode needs a build where __shared__ is a plain static and blocks run one at a time. ThreadSanitizer
// builds get this automatically (fiber switches are invisible to TSan, so there it is the only mode).
#if defined(__SANITIZE_THREAD__)
#define SIMT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SIMT_TSAN 1
#endif
#endif
#if defined(SIMT_ENABLE_OS_THREADS) || defined(SIMT_TSAN)
#define SIMT_SHARED_PROCESS_WIDE 1
#endif

namespace simt {

enum class Schedule {
  forward,   // thread 0 first: the order that most often hides a missing barrier
  reversed,  // last thread first
  random,    // a fresh permutation per pass, from `seed` and the block index (reproducible)
};

enum class Mode {
  fibers,      // all threads of a block on one OS thread, switching only at barriers and collectives
  os_threads,  // each CUDA thread an OS thread, so ThreadSanitizer sees the races
};

struct Config {
  Schedule schedule = Schedule::forward;
  uint64_t seed = 0;
#if defined(SIMT_TSAN)
  Mode mode = Mode::os_threads;
#else
  Mode mode = Mode::fibers;
#endif
  unsigned block_threads = 0;        // blocks run in parallel on this many OS threads; 0 = one per core
  std::size_t stack_bytes = 256 << 10;
  // The largest grid a launch may have: CUDA's (every GPU since sm_30) unless a test lowers it to
  // reach, on small shapes, the code that splits a grid too large for one launch.
  uint32_t max_grid[3] = {2147483647u, 65535u, 65535u};
  // The emulated GPU: sm_80 class (cp.async, ldmatrix, mma.sync), or sm_90a, where the host code
  // also picks the kernels that issue wgmma (simt::device_runs_wgmma). The emulator runs every
  // instruction either way; this is what the dispatch sees.
  bool sm90a = false;
  // The emulated GPU's SMs (simt::multiprocessor_count): few, so that a persistent kernel's blocks
  // each take several tiles on the small shapes tests run.
  unsigned multiprocessors = 4;
  // Report each counted shared-memory request that takes more wavefronts than the fewest (a bank
  // conflict) on stderr: the kernel, the accessor's source line, the lanes, the wavefronts.
  bool report_conflicts = false;
};

namespace detail {

inline unsigned long parse_unsigned(const char* name, const std::string& text) {
  char* end = nullptr;
  const unsigned long value = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0') {
    throw Error(std::string("simt: ") + name + "='" + text + "' is not a non-negative integer");
  }
  return value;
}

inline void apply_schedule(Config& config, const std::string& text) {
  const std::string name = text.substr(0, text.find(':'));
  if (name == "forward" && name == text) {
    config.schedule = Schedule::forward;
  } else if (name == "reversed" && name == text) {
    config.schedule = Schedule::reversed;
  } else if (name == "random") {
    config.schedule = Schedule::random;
    config.seed = name == text ? 0 : parse_unsigned("SIMT_SCHEDULE seed", text.substr(name.size() + 1));
  } else {
    throw Error("simt: SIMT_SCHEDULE='" + text + "' is not forward, reversed or random[:SEED]");
  }
}

inline void apply_arch(Config& config, const std::string& text) {
  if (text == "sm_80" || text == "sm_90a") {
    config.sm90a = text == "sm_90a";
  } else {
    throw Error("simt: SIMT_ARCH='" + text + "' is not sm_80 or sm_90a");
  }
}

inline void apply_mode(Config& config, const std::string& text) {
  if (text == "fibers") {
    config.mode = Mode::fibers;
  } else if (text == "threads") {
    config.mode = Mode::os_threads;
  } else {
    throw Error("simt: SIMT_MODE='" + text + "' is not fibers or threads");
  }
}

struct ConfigState {
  std::mutex mutex;
  bool loaded = false;
  Config value;
};

inline ConfigState& config_state() {
  static ConfigState state;
  return state;
}

}  // namespace detail

// `base` with the SIMT_* environment variables applied; throws simt::Error on a malformed value.
inline Config config_from_env(Config base = {}) {
  if (const char* s = std::getenv("SIMT_SCHEDULE")) detail::apply_schedule(base, s);
  if (const char* s = std::getenv("SIMT_MODE")) detail::apply_mode(base, s);
  if (const char* s = std::getenv("SIMT_ARCH")) detail::apply_arch(base, s);
  if (const char* s = std::getenv("SIMT_BLOCK_THREADS")) {
    base.block_threads = static_cast<unsigned>(detail::parse_unsigned("SIMT_BLOCK_THREADS", s));
  }
  if (const char* s = std::getenv("SIMT_REPORT_CONFLICTS")) {
    base.report_conflicts = detail::parse_unsigned("SIMT_REPORT_CONFLICTS", s) != 0;
  }
  if (const char* s = std::getenv("SIMT_STACK_KB")) {
    base.stack_bytes = detail::parse_unsigned("SIMT_STACK_KB", s) << 10;
  }
  return base;
}

// The configuration the next launch uses: the environment's until set_config is called.
inline Config config() {
  auto& state = detail::config_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (!state.loaded) {
    state.value = config_from_env();
    state.loaded = true;
  }
  return state.value;
}

inline void set_config(const Config& config) {
  auto& state = detail::config_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  state.value = config;
  state.loaded = true;
}

// Sets the largest grid (x, y, z) a launch may have; returns the previous one.
inline std::array<uint32_t, 3> set_max_grid(const std::array<uint32_t, 3>& limits) {
  Config next = config();
  const std::array<uint32_t, 3> previous{next.max_grid[0], next.max_grid[1], next.max_grid[2]};
  for (int i = 0; i < 3; ++i) {
    if (limits[i] == 0) throw Error("simt: a grid limit must be positive");
    next.max_grid[i] = limits[i];
  }
  set_config(next);
  return previous;
}

// Sets the emulated GPU from its SIMT_ARCH spelling; returns the previous one, spelled the same way.
inline std::string set_arch(const std::string& text) {
  Config next = config();
  const bool previous = next.sm90a;
  detail::apply_arch(next, text);
  set_config(next);
  return previous ? "sm_90a" : "sm_80";
}

// Sets the schedule from its SIMT_SCHEDULE spelling; returns the previous one, spelled the same way.
inline std::string set_schedule(const std::string& text) {
  Config next = config();
  const Config previous = next;
  detail::apply_schedule(next, text);
  set_config(next);
  switch (previous.schedule) {
    case Schedule::reversed: return "reversed";
    case Schedule::random: return "random:" + std::to_string(previous.seed);
    case Schedule::forward: break;
  }
  return "forward";
}

}  // namespace simt
