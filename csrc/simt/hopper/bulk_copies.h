// The bulk copies (cp.async.bulk, cp.async.bulk.tensor) a block has issued that have not landed.
// They belong to the block, not to the issuing thread: a copy completes on an mbarrier that other
// threads wait for. The emulator is adversarial about when a copy lands: only once no thread of the
// block can run (BlockSync), or, under the random schedule, at a random pass boundary after its
// issue. The source is read when the copy lands, so a kernel that reads the destination without
// waiting on the mbarrier reads stale shared memory. Landing performs complete-tx on the mbarrier
// for the copy's bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "mbarrier_state.h"

namespace simt::detail {

// One contiguous run of a copy's destination: from `src`, or, where `src` is null (a tensor copy's
// out-of-bounds elements), `fill` bytes.
struct CopyPiece {
  unsigned char* dst;
  const unsigned char* src;
  unsigned bytes;
  unsigned char fill;
};

struct BulkCopy {
  std::vector<CopyPiece> pieces;
  uint64_t* mbarrier;  // receives complete-tx(tx_bytes) when the copy lands
  unsigned tx_bytes;
};

class BulkCopies {
 public:
  void issue(BulkCopy copy) { in_flight_.push_back(std::move(copy)); }

  bool empty() const { return in_flight_.empty(); }

  void land_all() {
    // Landing may throw (an mbarrier that is not one): take the copies out first.
    std::vector<BulkCopy> landing = std::exchange(in_flight_, {});
    for (const BulkCopy& copy : landing) land(copy);
  }

  template <class Coin>
  void land_at_random(Coin&& coin) {
    std::vector<BulkCopy> kept;
    std::vector<BulkCopy> landing;
    for (BulkCopy& copy : in_flight_) (coin() ? landing : kept).push_back(std::move(copy));
    in_flight_ = std::move(kept);
    for (const BulkCopy& copy : landing) land(copy);
  }

  // A new block: what the previous one left in flight never lands (its shared memory is gone).
  void reset() { in_flight_.clear(); }

 private:
  static void land(const BulkCopy& copy) {
    for (const CopyPiece& piece : copy.pieces) {
      if (piece.src != nullptr) {
        std::memcpy(piece.dst, piece.src, piece.bytes);
      } else {
        std::memset(piece.dst, piece.fill, piece.bytes);
      }
    }
    complete_tx_on_mbarrier(copy.mbarrier, "the complete-tx of a bulk copy", copy.tx_bytes);
  }

  std::vector<BulkCopy> in_flight_;
};

}  // namespace simt::detail
