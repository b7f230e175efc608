// Asynchronous operations one thread has issued, grouped as a commit_group instruction groups them
// (cp.async.commit_group, wgmma.commit_group) and completed by the matching wait_group N: every
// operation of the committed groups but the N most recent completes, in issue order. Operations
// issued after the last commit belong to no committed group yet, and wait_group does not wait for
// them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace simt::detail {

template <class Operation>
class CommitGroups {
 public:
  void issue(const Operation& op) { pending_.push_back(Pending{op, committed_}); }

  // Closes the open group (possibly empty: an empty group is complete at once).
  void commit() { ++committed_; }

  template <class Complete>
  void wait(unsigned newest, Complete&& complete) {
    if (committed_ < newest) return;
    const uint64_t first_pending = committed_ - newest;
    complete_where([first_pending](const Pending& p) { return p.group < first_pending; }, complete);
  }

  // Completes each pending operation for which `coin()` comes up true.
  template <class Coin, class Complete>
  void complete_at_random(Coin&& coin, Complete&& complete) {
    complete_where([&coin](const Pending&) { return coin(); }, complete);
  }

  // A new block: what the previous one left pending never completes.
  void reset() {
    pending_.clear();
    committed_ = 0;
  }

 private:
  struct Pending {
    Operation op;
    uint64_t group;
  };

  template <class Due, class Complete>
  void complete_where(Due&& due, Complete&& complete) {
    std::size_t kept = 0;
    for (const Pending& p : pending_) {
      if (due(p)) {
        complete(p.op);
      } else {
        pending_[kept++] = p;
      }
    }
    pending_.resize(kept);
  }

  std::vector<Pending> pending_;
  uint64_t committed_ = 0;  // groups committed so far; the open group has this index
};

}  // namespace simt::detail
