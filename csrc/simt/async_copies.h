// The cp.async copies one CUDA thread has issued and that have not landed yet, grouped as
// cp.async.commit_group groups them. The emulator is adversarial about when a copy lands: only when
// its thread waits for its group (wait_group / wait_all), or, under the random schedule, at a random
// pass boundary after it was issued. The source is read when the copy lands, not when it is issued,
// so a kernel that forgets a wait (or the __syncthreads after it) reads stale shared memory.
#pragma once

#include <cstdint>
#include <cstring>

#include "commit_groups.h"

namespace simt::detail {

class AsyncCopies {
 public:
  // Writes `src_size` bytes from `src` and `cp_size - src_size` zeros to `dst`, later.
  void issue(void* dst, const void* src, unsigned cp_size, unsigned src_size) {
    groups_.issue(Copy{static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), cp_size, src_size});
  }

  void commit() { groups_.commit(); }

  // Lands every copy of the committed groups but the `newest` most recent ones.
  void wait(unsigned newest) { groups_.wait(newest, land); }

  // Under the random schedule: lands each pending copy for which `coin()` comes up true.
  template <class Coin>
  void land_at_random(Coin&& coin) {
    groups_.complete_at_random(coin, land);
  }

  void reset() { groups_.reset(); }

 private:
  struct Copy {
    unsigned char* dst;
    const unsigned char* src;
    unsigned cp_size;
    unsigned src_size;
  };

  static void land(const Copy& copy) {
    if (copy.src_size != 0) std::memcpy(copy.dst, copy.src, copy.src_size);  // src-size 0 may name no memory
    std::memset(copy.dst + copy.src_size, 0, copy.cp_size - copy.src_size);
  }

  CommitGroups<Copy> groups_;
};

}  // namespace simt::detail
