// The synchronisation state of one block: which thread runs, which waits at __syncthreads, which
// waits in which warp collective, which waits for which mbarrier phase, which exited; the bulk
// copies in flight; which waits can end; and, when none can and no thread can run, a deadlock
// report. It never blocks: the executors (fibers or OS threads, block_scheduler.h) decide how a
// waiting thread waits, and call release_or_throw() once no thread of the block is running.
#pragma once

#include <vector_types.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "hopper/bulk_copies.h"
#include "error.h"
#include "hopper/mbarrier_state.h"

namespace simt::detail {

inline constexpr unsigned kWarpSize = 32;

enum class WarpOp : uint8_t { shfl, shfl_up, shfl_down, shfl_xor, syncwarp, vote };

inline const char* warp_op_name(WarpOp op) {
  switch (op) {
    case WarpOp::shfl: return "__shfl_sync";
    case WarpOp::shfl_up: return "__shfl_up_sync";
    case WarpOp::shfl_down: return "__shfl_down_sync";
    case WarpOp::shfl_xor: return "__shfl_xor_sync";
    case WarpOp::syncwarp: return "__syncwarp";
    case WarpOp::vote: return "a vote (__ballot_sync/__any_sync/__all_sync)";
  }
  return "?";
}

// What one lane brings to a warp collective.
struct WarpCall {
  WarpOp op;
  unsigned mask;
  unsigned src_lane;  // shuffles: the lane whose value this lane receives
  uint64_t value;     // shuffles: the value's bytes; votes: the predicate
};

// A vote's result: the ballot of the predicates, and which lanes took part.
inline uint64_t pack_vote(unsigned ballot, unsigned participants) {
  return (static_cast<uint64_t>(participants) << 32) | ballot;
}

class BlockSync {
 public:
  void reset(unsigned n_threads) {
    threads_.assign(n_threads, Thread{});
    running_ = n_threads;
    at_barrier_ = 0;
    exited_ = 0;
    bulk_copies_.reset();
  }

  void arrive_at_barrier(unsigned tid) {
    threads_[tid].state = State::at_barrier;
    --running_;
    ++at_barrier_;
  }

  void arrive_at_warp(unsigned tid, const WarpCall& call) {
    threads_[tid].state = State::at_warp;
    threads_[tid].call = call;
    --running_;
  }

  // Waits until the phase of parity `parity` of `mbarrier` has completed.
  void wait_on_mbarrier(unsigned tid, const uint64_t* mbarrier, unsigned parity) {
    threads_[tid].state = State::at_mbarrier;
    threads_[tid].mbarrier = mbarrier;
    threads_[tid].parity = parity & 1;
    --running_;
  }

  BulkCopies& bulk_copies() { return bulk_copies_; }

  void exit(unsigned tid) {
    threads_[tid].state = State::exited;
    --running_;
    ++exited_;
  }

  bool is_running(unsigned tid) const { return threads_[tid].state == State::running; }
  unsigned running() const { return running_; }
  bool all_exited() const { return exited_ == threads_.size(); }
  uint64_t warp_result(unsigned tid) const { return threads_[tid].result; }

  // Called once no thread runs. Resumes every complete rendezvous and every thread whose mbarrier
  // phase has completed; if there is none, lands the bulk copies in flight (their complete-tx may
  // complete a phase). If still no thread can resume, nothing can ever change again: that is a
  // deadlock, reported with where every thread waits.
  void release_or_throw(uint3 block) {
    bool released = false;
    for (unsigned tid = 0; tid < threads_.size(); ++tid) {
      if (threads_[tid].state == State::at_warp) released |= release_warp_group(tid, block);
    }
    // CUDA leaves __syncthreads after an early exit undefined; here it is a deadlock.
    if (at_barrier_ == threads_.size()) {
      for (Thread& t : threads_) t.state = State::running;
      running_ = at_barrier_;
      at_barrier_ = 0;
      released = true;
    }
    released |= release_mbarrier_waiters();
    if (!released && !bulk_copies_.empty()) {
      bulk_copies_.land_all();
      released = release_mbarrier_waiters();
    }
    if (!released) throw Error(deadlock_report(block));
  }

 private:
  enum class State : uint8_t { running, at_barrier, at_warp, at_mbarrier, exited };
  struct Thread {
    State state = State::running;
    WarpCall call{};
    uint64_t result = 0;
    const uint64_t* mbarrier = nullptr;  // at_mbarrier: the barrier and the parity of the awaited phase
    unsigned parity = 0;
  };

  bool release_mbarrier_waiters() {
    bool released = false;
    for (Thread& t : threads_) {
      if (t.state == State::at_mbarrier &&
          mbarrier_phase_completed(t.mbarrier, t.parity, "mbarrier.try_wait.parity")) {
        t.state = State::running;
        ++running_;
        released = true;
      }
    }
    return released;
  }

  // A lane takes part in its warp's rendezvous unless it exited (or never existed, in a partial
  // last warp): CUDA asks only the non-exited lanes named in the mask to arrive.
  bool takes_part(unsigned tid) const { return tid < threads_.size() && threads_[tid].state != State::exited; }

  // Completes the collective `tid` waits in if every lane named in its mask waits in it too.
  bool release_warp_group(unsigned tid, uint3 block) {
    const WarpCall& call = threads_[tid].call;
    const unsigned base = tid - tid % kWarpSize;
    unsigned participants = 0;
    for (unsigned lane = 0; lane < kWarpSize; ++lane) {
      if (!(call.mask >> lane & 1u) || !takes_part(base + lane)) continue;
      const Thread& other = threads_[base + lane];
      if (other.state != State::at_warp || other.call.mask != call.mask) return false;
      if (other.call.op != call.op) {
        throw Error("simt: block " + format(block) + ", warp " + std::to_string(base / kWarpSize) + ": lane " +
                    std::to_string(tid - base) + " is in " + warp_op_name(call.op) + " but lane " +
                    std::to_string(lane) + " is in " + warp_op_name(other.call.op) + " with the same mask " +
                    hex(call.mask) + "; all lanes named in a mask must call the same collective");
      }
      participants |= 1u << lane;
    }
    unsigned ballot = 0;
    for (unsigned lane = 0; lane < kWarpSize; ++lane) {
      if (participants >> lane & 1u && threads_[base + lane].call.value != 0) ballot |= 1u << lane;
    }
    for (unsigned lane = 0; lane < kWarpSize; ++lane) {
      if (!(participants >> lane & 1u)) continue;
      Thread& t = threads_[base + lane];
      if (call.op == WarpOp::vote) {
        t.result = pack_vote(ballot, participants);
      } else {
        // Reading a lane that is not taking part is undefined in CUDA; here it yields the own value.
        const unsigned src = t.call.src_lane;
        t.result = participants >> src & 1u ? threads_[base + src].call.value : t.call.value;
      }
      t.state = State::running;
      ++running_;
    }
    return true;
  }

  std::string describe(const Thread& t) const {
    switch (t.state) {
      case State::running: return "running";
      case State::at_barrier: return "wait in __syncthreads";
      case State::at_warp: return std::string("wait in ") + warp_op_name(t.call.op) + " with mask " + hex(t.call.mask);
      case State::at_mbarrier:
        return "wait for the phase of parity " + std::to_string(t.parity) + " of " + mbarrier_name(t.mbarrier) +
               " (" + describe_mbarrier(t.mbarrier) + ")";
      case State::exited: return "exited";
    }
    return "?";
  }

  // One line per warp, lanes in the same state grouped: "warp 0: lanes 0-15 wait in ...; lanes 16-31 exited".
  std::string deadlock_report(uint3 block) const {
    std::string report = "simt: deadlock in block " + format(block) + ", no thread can make progress:";
    for (unsigned base = 0; base < threads_.size(); base += kWarpSize) {
      report += "\n  warp " + std::to_string(base / kWarpSize) + ":";
      const unsigned end = std::min(base + kWarpSize, static_cast<unsigned>(threads_.size()));
      for (unsigned first = base; first < end;) {
        const std::string what = describe(threads_[first]);
        unsigned last = first;
        while (last + 1 < end && describe(threads_[last + 1]) == what) ++last;
        report += (first == base ? " lanes " : "; lanes ") + std::to_string(first - base) + "-" +
                  std::to_string(last - base) + " " + what;
        first = last + 1;
      }
    }
    return report +
           "\n__syncthreads() needs every thread of the block (none may have exited); a warp collective "
           "needs every non-exited lane named in its mask, calling it with the same mask; an mbarrier phase "
           "needs every arrival mbarrier.init counted and every transaction byte expect-tx announced.";
  }

  static std::string format(uint3 b) {
    return "(" + std::to_string(b.x) + "," + std::to_string(b.y) + "," + std::to_string(b.z) + ")";
  }
  static std::string hex(unsigned mask) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08x", mask);
    return text;
  }

  std::vector<Thread> threads_;
  unsigned running_ = 0;
  unsigned at_barrier_ = 0;
  unsigned exited_ = 0;
  BulkCopies bulk_copies_;
};

}  // namespace simt::detail
