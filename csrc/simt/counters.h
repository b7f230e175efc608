// Per-kernel counters of emulated launches, the quantities Nsight Compute reports: global requests
// and the 32-byte sectors they touch, shared requests and the wavefronts they take (request_cost.h),
// bulk copies by the tensor memory accelerator and the sectors they read, barriers, FMAs and
// tensor-core MMAs. Collected between begin_counting() and end_counting(); with no session active,
// every note costs one branch.
//
// A request is one warp-wide instruction. The emulator runs a warp's lanes one after another, so
// the accesses of one instruction are grouped by lane: the k-th execution, since the last barrier,
// of one source line (the accessor's call site) by each lane of a warp is one request. That is
// exact where the warp's control flow is uniform. Where lanes run a line a different number of
// times in each trip of a loop (each trip walks a share of work longer for some lanes), later
// trips' executions would be grouped with another trip's: such a loop names its trips
// (simt::LoopTrip), and the k-th execution of a line in one trip forms a request with the lanes'
// k-th in the same trip.
//
// Blocks run on several OS threads (launch.h): each OS thread records its block in its own
// BlockRecorder and adds the block's counts to the session's totals when the block is done.
// Launches are serialised while a session is active, and a session begins and ends only between
// launches, so that every block of a launch is counted or none is.
#pragma once

#include <vector_functions.h>  // make_uint3, which thread_context.h uses

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "config.h"
#include "error.h"
#include "instrument_kinds.h"
#include "kernel_name.h"
#include "request_cost.h"
#include "thread_context.h"

namespace simt {

struct KernelCounters {
  uint64_t launches = 0;
  uint64_t global_load_requests = 0, global_load_sectors = 0;
  uint64_t global_store_requests = 0, global_store_sectors = 0;
  uint64_t shared_load_requests = 0, shared_load_wavefronts = 0;
  uint64_t shared_store_requests = 0, shared_store_wavefronts = 0;
  uint64_t shared_bank_conflicts = 0;  // wavefronts of loads and stores beyond the conflict-free ones
  uint64_t barriers = 0;  // __syncthreads executed, counted once per block
  uint64_t ffma = 0, dfma = 0;  // per thread
  uint64_t mma_16816 = 0, mma_1688 = 0, mma_1684 = 0;  // per warp
  uint64_t wgmma_m64n8 = 0;              // per warpgroup, in m64n8 slices (instrument_kinds.h)
  // cp.async.bulk and cp.async.bulk.tensor, per issuing thread, and the distinct global sectors
  // each copy reads (out-of-bounds fill reads none): TMA traffic, which is in no request.
  uint64_t bulk_copies = 0, bulk_copy_sectors = 0;

  // The fields in a fixed order, with their names: how they cross to Python.
  static std::vector<const char*> field_names() {
    return {"launches", "global_load_requests", "global_load_sectors", "global_store_requests",
            "global_store_sectors", "shared_load_requests", "shared_load_wavefronts",
            "shared_store_requests", "shared_store_wavefronts", "shared_bank_conflicts", "barriers", "ffma", "dfma",
            "mma_16816", "mma_1688", "mma_1684", "wgmma_m64n8", "bulk_copies", "bulk_copy_sectors"};
  }
  std::vector<uint64_t*> fields() {
    return {&launches, &global_load_requests, &global_load_sectors, &global_store_requests,
            &global_store_sectors, &shared_load_requests, &shared_load_wavefronts,
            &shared_store_requests, &shared_store_wavefronts, &shared_bank_conflicts, &barriers, &ffma, &dfma,
            &mma_16816, &mma_1688, &mma_1684, &wgmma_m64n8, &bulk_copies, &bulk_copy_sectors};
  }
  std::vector<uint64_t> values() const {
    std::vector<uint64_t> out;
    for (const uint64_t* field : const_cast<KernelCounters*>(this)->fields()) out.push_back(*field);
    return out;
  }
  KernelCounters& operator+=(const KernelCounters& other) {
    const std::vector<uint64_t*> mine = fields();
    const std::vector<uint64_t> theirs = other.values();
    for (std::size_t i = 0; i < mine.size(); ++i) *mine[i] += theirs[i];
    return *this;
  }
};

namespace detail {

inline std::atomic<bool> counting{false};

// The session: totals per kernel name, and the launch being counted.
struct CounterSession {
  std::mutex mutex;
  uint64_t id = 0;  // changes with every session, so that late adds of an old one are dropped
  std::map<std::string, KernelCounters> totals;
  // Held shared by launches outside a session, exclusively by a counted launch and while a
  // session begins or ends.
  std::shared_mutex launches;
  uint64_t launch_serial = 0;
  std::string kernel;  // of the launch in flight
};

inline CounterSession& session() {
  static CounterSession s;
  return s;
}

// The state of one block in flight on this OS thread.
class BlockRecorder {
 public:
  ~BlockRecorder() { finish_block(); }

  void access(MemorySpace space, AccessKind kind, const void* address, unsigned bytes, unsigned line,
              const char* file) {
    if (!enter()) return;
    const unsigned tid = current_thread.tid;
    Lane& lane = lanes_[tid];
    const Site site{file, line, space, kind};
    uint32_t occurrence = 0;
    bool seen = false;
    for (Occurrences& known : lane.occurrences) {
      if (known.site == site && known.trip == lane.trip) {
        occurrence = known.count++;
        seen = true;
        break;
      }
    }
    if (!seen) lane.occurrences.push_back(Occurrences{site, lane.trip, 1});
    const RequestKey key{tid / kLanes, lane.epoch, site, lane.trip, occurrence};
    pending_[key].push_back(LaneAccess{reinterpret_cast<uintptr_t>(address), bytes, tid % kLanes});
  }

  // The calling thread begins trip `trip` of a named loop (LoopTrip), inside the trips it is in.
  void begin_trip(uint64_t trip) {
    if (!enter()) return;
    Lane& lane = lanes_[current_thread.tid];
    lane.outer_trips.push_back(lane.trip);
    // One value for the nest of trips; 0 stays "none".
    lane.trip = (lane.trip ^ (trip + 1)) * 0x9e3779b97f4a7c15ull + 1;
  }
  void end_trip() {
    if (!enter()) return;
    Lane& lane = lanes_[current_thread.tid];
    if (lane.outer_trips.empty()) return;  // begun before counting began
    lane.trip = lane.outer_trips.back();
    lane.outer_trips.pop_back();
  }

  void barrier() {
    if (!enter()) return;
    const unsigned tid = current_thread.tid;
    if (tid == 0) ++counts_.barriers;
    ++lanes_[tid].epoch;
    lanes_[tid].occurrences.clear();
    if (++arrivals_ == lanes_.size()) {  // every access before this barrier is in
      arrivals_ = 0;
      cost_pending();
    }
  }

  void math(MathOp op, uint64_t count) {
    if (!enter()) return;
    switch (op) {
      case MathOp::ffma: counts_.ffma += count; break;
      case MathOp::dfma: counts_.dfma += count; break;
      case MathOp::mma_16816: counts_.mma_16816 += count; break;
      case MathOp::mma_1688: counts_.mma_1688 += count; break;
      case MathOp::mma_1684: counts_.mma_1684 += count; break;
      case MathOp::wgmma_m64n8: counts_.wgmma_m64n8 += count; break;
    }
  }

  // A bulk copy the calling thread issued, reading `source` (one entry per run of global bytes).
  void bulk_copy(const std::vector<LaneAccess>& source) {
    if (!enter()) return;
    ++counts_.bulk_copies;
    counts_.bulk_copy_sectors += sectors(source);
  }

  // Costs the block's requests and adds its counts to the session's totals.
  void finish_block() {
    cost_pending();
    if (counts_.values() != KernelCounters{}.values()) {
      CounterSession& s = session();
      std::lock_guard<std::mutex> lock(s.mutex);
      if (s.id == session_id_ && counting.load(std::memory_order_relaxed)) s.totals[kernel_] += counts_;
    }
    counts_ = KernelCounters{};
    lanes_.clear();
  }

 private:
  struct Site {
    const char* file;
    unsigned line;
    MemorySpace space;
    AccessKind kind;
    bool operator==(const Site& o) const {
      return file == o.file && line == o.line && space == o.space && kind == o.kind;
    }
    auto tied() const { return std::make_tuple(file, line, space, kind); }
  };
  struct RequestKey {
    unsigned warp;
    uint32_t epoch;
    Site site;
    uint64_t trip;
    uint32_t occurrence;
    bool operator<(const RequestKey& o) const {
      return std::make_tuple(warp, epoch, site.tied(), trip, occurrence) <
             std::make_tuple(o.warp, o.epoch, o.site.tied(), o.trip, o.occurrence);
    }
  };
  struct Occurrences {
    Site site;
    uint64_t trip;
    uint32_t count;
  };
  struct Lane {
    uint32_t epoch = 0;  // barriers passed
    uint64_t trip = 0;   // the named loop trips the lane is in, as one value (0: none)
    std::vector<uint64_t> outer_trips;  // those to return to
    std::vector<Occurrences> occurrences;  // per site and trip since the last barrier
  };

  // Starts recording a new block when the caller's block is not the one recorded; false outside a
  // kernel.
  bool enter() {
    if (current_thread.block == nullptr) return false;
    const CounterSession& s = session();
    if (!lanes_.empty() && launch_ == s.launch_serial && block_.x == blockIdx.x && block_.y == blockIdx.y &&
        block_.z == blockIdx.z) {
      return true;
    }
    finish_block();
    launch_ = s.launch_serial;
    session_id_ = s.id;
    kernel_ = s.kernel;
    block_ = blockIdx;
    lanes_.assign(blockDim.x * blockDim.y * blockDim.z, Lane{});
    arrivals_ = 0;
    return true;
  }

  void cost_pending() {
    for (const auto& [key, request] : pending_) {
      const bool load = key.site.kind == AccessKind::load;
      if (key.site.space == MemorySpace::global) {
        ++(load ? counts_.global_load_requests : counts_.global_store_requests);
        (load ? counts_.global_load_sectors : counts_.global_store_sectors) += sectors(request);
      } else {
        ++(load ? counts_.shared_load_requests : counts_.shared_store_requests);
        const SharedCost cost = shared_cost(request);
        (load ? counts_.shared_load_wavefronts : counts_.shared_store_wavefronts) += cost.wavefronts;
        counts_.shared_bank_conflicts += cost.conflicts;
        if (cost.conflicts > 0 && config().report_conflicts) report_conflict(key, request, cost);
      }
    }
    pending_.clear();
  }

  // One line: the kernel, the site, the wavefronts, and each lane's bytes from the request's lowest.
  void report_conflict(const RequestKey& key, const std::vector<LaneAccess>& request, const SharedCost& cost) const {
    uintptr_t lowest = UINTPTR_MAX;
    for (const LaneAccess& a : request) lowest = std::min(lowest, a.address);
    std::string lanes;
    for (const LaneAccess& a : request) {
      lanes += " " + std::to_string(a.lane) + ":+" + std::to_string(a.address - lowest);
    }
    std::fprintf(stderr, "simt: %s: %s:%u: a shared %s took %llu wavefronts, %llu beyond the fewest; lane:bytes%s\n",
                 kernel_.c_str(), key.site.file, key.site.line, key.site.kind == AccessKind::load ? "load" : "store",
                 static_cast<unsigned long long>(cost.wavefronts), static_cast<unsigned long long>(cost.conflicts),
                 lanes.c_str());
  }

  uint64_t launch_ = 0, session_id_ = 0;
  std::string kernel_;
  uint3 block_{};
  std::vector<Lane> lanes_;
  unsigned arrivals_ = 0;
  std::map<RequestKey, std::vector<LaneAccess>> pending_;
  KernelCounters counts_;
};

// The recorder of the calling thread's block. With fibers, all threads of a block run on one OS
// thread; in OS-thread builds blocks run one at a time, so one recorder, behind a lock, serves all.
#if defined(SIMT_SHARED_PROCESS_WIDE)
inline std::mutex recorder_mutex;
inline BlockRecorder recorder_instance;
template <class F>
void with_recorder(F&& f) {
  std::lock_guard<std::mutex> lock(recorder_mutex);
  f(recorder_instance);
}
#else
inline thread_local BlockRecorder recorder_instance;
template <class F>
void with_recorder(F&& f) {
  f(recorder_instance);
}
#endif

// Held for the duration of one launch: while a session is active, names the launch, counts it,
// and serialises it with the other launches. Blocks run by helper OS threads are added when those
// threads exit (the recorder's destructor); the caller's last block when this ends.
class CountedLaunch {
 public:
  explicit CountedLaunch(const void* kernel) {
    if (current_thread.block != nullptr) return;  // a launch from a kernel, refused by run_grid
    CounterSession& s = session();
    shared_ = std::shared_lock<std::shared_mutex>(s.launches);
    if (!counting.load()) return;
    shared_.unlock();
    lock_ = std::unique_lock<std::shared_mutex>(s.launches);
    if (!counting.load()) return;  // the session ended meanwhile
    const std::string name = kernel_name(kernel);
    std::lock_guard<std::mutex> lock(s.mutex);
    ++s.launch_serial;
    s.kernel = name;
    ++s.totals[name].launches;
  }
  CountedLaunch(const CountedLaunch&) = delete;
  CountedLaunch& operator=(const CountedLaunch&) = delete;
  ~CountedLaunch() {
    if (lock_.owns_lock()) with_recorder([](BlockRecorder& r) { r.finish_block(); });
  }

 private:
  std::shared_lock<std::shared_mutex> shared_;
  std::unique_lock<std::shared_mutex> lock_;
};

}  // namespace detail

// Starts a session; sessions neither nest nor overlap.
inline void begin_counting() {
  detail::CounterSession& s = detail::session();
  std::unique_lock<std::shared_mutex> launch_lock(s.launches);
  std::lock_guard<std::mutex> lock(s.mutex);
  if (detail::counting.load()) {
    throw Error("simt: a counter session is already active (counter sessions cannot be nested or run concurrently)");
  }
  ++s.id;
  s.totals.clear();
  detail::counting.store(true);
}

// The totals so far of the active session, per kernel name.
inline std::map<std::string, KernelCounters> counter_totals() {
  detail::CounterSession& s = detail::session();
  std::unique_lock<std::shared_mutex> launch_lock(s.launches);
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!detail::counting.load()) throw Error("simt: no counter session is active");
  return s.totals;
}

// Ends the session; returns its totals per kernel name.
inline std::map<std::string, KernelCounters> end_counting() {
  detail::CounterSession& s = detail::session();
  std::unique_lock<std::shared_mutex> launch_lock(s.launches);
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!detail::counting.load()) throw Error("simt: no counter session is active");
  detail::counting.store(false);
  return std::exchange(s.totals, {});
}

}  // namespace simt
