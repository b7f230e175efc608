// The cp.async copies one CUDA thread has issued and that have not landed yet, grouped as
// cp.async.commit_group groups them. The emulator is adversarial about when a copy lands: only when
// its thread waits for its group (wait_group / wait_all), or, under the random schedule, at a random
// pass boundary after it was issued. The source is read when the copy lands, not when it is issued,
// so a kernel that forgets a wait (or the __syncthreads after it) reads stale shared memory.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace simt::detail {

class AsyncCopies {
 public:
  // Writes `src_size` bytes from `src` and `cp_size - src_size` zeros to `dst`, later.
  void issue(void* dst, const void* src, unsigned cp_size, unsigned src_size) {
    pending_.push_back(Copy{static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), cp_size,
                            src_size, committed_});
  }

  // Closes the open group (possibly empty: an empty group is complete at once).
  void commit() { ++committed_; }

  // Lands every copy of the committed groups but the `newest` most recent ones; copies not yet
  // committed are not waited for (PTX: wait_group counts committed groups only).
  void wait(unsigned newest) {
    if (committed_ < newest) return;
    const uint64_t first_pending = committed_ - newest;
    std::size_t kept = 0;
    for (const Copy& copy : pending_) {
      if (copy.group < first_pending) {
        land(copy);
      } else {
        pending_[kept++] = copy;
      }
    }
    pending_.resize(kept);
  }

  // Under the random schedule: lands each pending copy for which `coin()` comes up true.
  template <class Coin>
  void land_at_random(Coin&& coin) {
    std::size_t kept = 0;
    for (const Copy& copy : pending_) {
      if (coin()) {
        land(copy);
      } else {
        pending_[kept++] = copy;
      }
    }
    pending_.resize(kept);
  }

  // A new block: what the previous one left pending never lands (its shared memory is gone).
  void reset() {
    pending_.clear();
    committed_ = 0;
  }

 private:
  struct Copy {
    unsigned char* dst;
    const unsigned char* src;
    unsigned cp_size;
    unsigned src_size;
    uint64_t group;
  };

  static void land(const Copy& copy) {
    if (copy.src_size != 0) std::memcpy(copy.dst, copy.src, copy.src_size);  // src-size 0 may name no memory
    std::memset(copy.dst + copy.src_size, 0, copy.cp_size - copy.src_size);
  }

  std::vector<Copy> pending_;
  uint64_t committed_ = 0;  // groups committed so far; the open group has this index
};

}  // namespace simt::detail
