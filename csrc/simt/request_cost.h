// What one warp-wide memory instruction (a "request") costs, as Nsight Compute counts it:
//  - global memory: the distinct 32-byte sectors its lanes touch (4 for 32 coalesced floats, 32
//    when every lane is in its own sector);
//  - shared memory: the wavefronts it takes. Shared memory has 32 banks of 4-byte words; lanes
//    reading distinct words of one bank are serialised, lanes reading the same word share it
//    (broadcast). Accesses wider than 4 bytes are served in phases of 128 bytes: 64-bit accesses
//    by half-warp, 128-bit ones by quarter-warp, so a conflict-free 128-bit request takes 4.
//    Bank conflicts are the wavefronts beyond the fewest that the distinct words of each phase
//    need (one per 32 words), as Nsight Compute's l1tex__data_bank_conflicts counts them.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace simt::detail {

inline constexpr unsigned kSectorBytes = 32;
inline constexpr unsigned kBanks = 32;
inline constexpr unsigned kBankBytes = 4;
inline constexpr unsigned kLanes = 32;

// One lane's part of a request: `bytes` bytes at `address`; 0 bytes for a lane that executes the
// instruction but moves nothing (a cp.async that zero-fills), which costs no sector or wavefront.
struct LaneAccess {
  uintptr_t address;
  unsigned bytes;
  unsigned lane;
};

inline uint64_t sectors(const std::vector<LaneAccess>& request) {
  std::vector<uintptr_t> touched;
  for (const LaneAccess& a : request) {
    if (a.bytes == 0) continue;
    for (uintptr_t s = a.address / kSectorBytes; s <= (a.address + a.bytes - 1) / kSectorBytes; ++s) {
      touched.push_back(s);
    }
  }
  std::sort(touched.begin(), touched.end());
  return static_cast<uint64_t>(std::unique(touched.begin(), touched.end()) - touched.begin());
}

struct SharedCost {
  uint64_t wavefronts = 0, conflicts = 0;
};

inline SharedCost shared_cost(const std::vector<LaneAccess>& request) {
  unsigned widest = 0;
  for (const LaneAccess& a : request) widest = std::max(widest, a.bytes);
  const unsigned lanes_per_phase = widest <= kBankBytes ? kLanes : kBanks * kBankBytes / widest;
  SharedCost cost;
  for (unsigned first = 0; first < kLanes; first += lanes_per_phase) {
    std::vector<uintptr_t> words;
    for (const LaneAccess& a : request) {
      if (a.bytes == 0 || a.lane < first || a.lane >= first + lanes_per_phase) continue;
      for (uintptr_t w = a.address / kBankBytes; w <= (a.address + a.bytes - 1) / kBankBytes; ++w) {
        words.push_back(w);
      }
    }
    if (words.empty()) continue;
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    std::array<uint64_t, kBanks> per_bank{};
    for (uintptr_t w : words) ++per_bank[w % kBanks];
    const uint64_t taken = *std::max_element(per_bank.begin(), per_bank.end());
    cost.wavefronts += taken;
    cost.conflicts += taken - (words.size() + kBanks - 1) / kBanks;
  }
  return cost;
}

}  // namespace simt::detail
