// The emulator's mbarrier object (PTX ISA, "Parallel Synchronization and Communication Instructions:
// mbarrier"): a 64-bit, 8-byte-aligned object in shared memory with a phase, the arrivals each
// phase expects, the arrivals still pending in the current phase and a transaction count (bytes
// announced by expect-tx minus bytes delivered by complete-tx). A phase completes when no arrival is
// pending and the transaction count is zero; then the phase parity flips and the pending count
// starts again from the expected count.
//
// The state is packed into the object itself, as on the GPU, so a kernel that forgets
// mbarrier.init, uses a barrier after mbarrier.inval or overwrites it is caught, and every update
// is one atomic compare-and-swap (blocks may run on OS threads):
//   bit 0        phase parity
//   bits 1-20    expected arrivals per phase (init's count, 1 to 2^20 - 1)
//   bits 21-40   pending arrivals of the current phase
//   bits 41-61   transaction count, 21-bit two's complement (PTX: -(2^20 - 1) to 2^20 - 1)
//   bits 62-63   0b10 once initialised; 0 after mbarrier.inval (fresh dynamic shared memory, all
//                0xff bytes, reads 0b11: also not a barrier)
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "../error.h"

namespace simt::detail {

inline constexpr int64_t kMbarrierLimit = (1 << 20) - 1;  // the largest count and |tx-count|

struct MbarrierState {
  unsigned phase = 0;     // parity of the current phase
  unsigned expected = 0;  // arrivals per phase
  unsigned pending = 0;   // arrivals still due in the current phase
  int64_t tx = 0;         // transaction bytes still due in the current phase (negative: delivered early)
};

inline std::string mbarrier_name(const void* object) {
  char text[64];
  std::snprintf(text, sizeof text, "mbarrier at %p", object);
  return text;
}

inline uint64_t encode_mbarrier(const MbarrierState& s) {
  const uint64_t tx_bits = static_cast<uint64_t>(s.tx) & ((uint64_t{1} << 21) - 1);
  return uint64_t{2} << 62 | tx_bits << 41 | uint64_t{s.pending} << 21 | uint64_t{s.expected} << 1 | s.phase;
}

inline bool is_mbarrier(uint64_t bits) { return bits >> 62 == 2; }

// The state of an initialised barrier; `op` names the operation in the error for any other object.
inline MbarrierState decode_mbarrier(uint64_t bits, const void* object, const char* op) {
  if (!is_mbarrier(bits)) {
    throw Error(std::string("simt: ") + op + " on " + mbarrier_name(object) +
                ", which is not an initialised mbarrier (no mbarrier.init, or after mbarrier.inval, or overwritten)");
  }
  MbarrierState s;
  s.phase = static_cast<unsigned>(bits & 1);
  s.expected = static_cast<unsigned>(bits >> 1 & kMbarrierLimit);
  s.pending = static_cast<unsigned>(bits >> 21 & kMbarrierLimit);
  const int64_t tx = static_cast<int64_t>(bits >> 41 & ((uint64_t{1} << 21) - 1));
  s.tx = tx >= (int64_t{1} << 20) ? tx - (int64_t{1} << 21) : tx;
  return s;
}

inline void check_mbarrier_address(const void* object, const char* op) {
  if (reinterpret_cast<uintptr_t>(object) % 8 != 0) {
    throw Error(std::string("simt: ") + op + " on " + mbarrier_name(object) + ": an mbarrier is 8-byte aligned");
  }
}

inline uint64_t load_mbarrier(const uint64_t* object) { return __atomic_load_n(object, __ATOMIC_ACQUIRE); }

// Applies `change` (which may throw) to the barrier's state, then completes the phase if it is due.
template <class Change>
void update_mbarrier(uint64_t* object, const char* op, Change&& change) {
  check_mbarrier_address(object, op);
  uint64_t old_bits = load_mbarrier(object);
  for (;;) {
    MbarrierState s = decode_mbarrier(old_bits, object, op);
    change(s);
    if (s.tx < -kMbarrierLimit || s.tx > kMbarrierLimit) {
      throw Error(std::string("simt: ") + op + " on " + mbarrier_name(object) + " takes its tx-count to " +
                  std::to_string(s.tx) + ", outside the range +-(2^20 - 1)");
    }
    if (s.pending == 0 && s.tx == 0) {  // phase completion
      s.phase ^= 1;
      s.pending = s.expected;
    }
    if (__atomic_compare_exchange_n(object, &old_bits, encode_mbarrier(s), /*weak=*/false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
      return;
    }
  }
}

inline void init_mbarrier(uint64_t* object, unsigned count) {
  check_mbarrier_address(object, "mbarrier.init");
  if (count < 1 || count > kMbarrierLimit) {
    throw Error("simt: mbarrier.init on " + mbarrier_name(object) + " with count " + std::to_string(count) +
                "; the count is 1 to 2^20 - 1");
  }
  MbarrierState s;
  s.expected = s.pending = count;
  __atomic_store_n(object, encode_mbarrier(s), __ATOMIC_RELEASE);
}

inline void invalidate_mbarrier(uint64_t* object) {
  check_mbarrier_address(object, "mbarrier.inval");
  decode_mbarrier(load_mbarrier(object), object, "mbarrier.inval");
  __atomic_store_n(object, uint64_t{0}, __ATOMIC_RELEASE);
}

// expect-tx(bytes) then, for count > 0, arrive-on(count).
inline void arrive_on_mbarrier(uint64_t* object, const char* op, unsigned count, int64_t expect_bytes) {
  update_mbarrier(object, op, [&](MbarrierState& s) {
    s.tx += expect_bytes;
    if (count > s.pending) {
      throw Error(std::string("simt: ") + op + " on " + mbarrier_name(object) + ": " + std::to_string(count) +
                  " arrival(s) where " + std::to_string(s.pending) +
                  " are pending; more threads arrive than mbarrier.init counted");
    }
    s.pending -= count;
  });
}

inline void complete_tx_on_mbarrier(uint64_t* object, const char* op, int64_t bytes) {
  update_mbarrier(object, op, [&](MbarrierState& s) { s.tx -= bytes; });
}

// True once the phase of parity `parity` has completed: the current phase is the next one. Like the
// GPU, it cannot tell that phase from the one two phases earlier.
inline bool mbarrier_phase_completed(const uint64_t* object, unsigned parity, const char* op) {
  check_mbarrier_address(object, op);
  return decode_mbarrier(load_mbarrier(object), object, op).phase != (parity & 1);
}

// For a deadlock report: "phase 0 current, 1 of 2 arrivals pending, tx-count 16".
inline std::string describe_mbarrier(const uint64_t* object) {
  const uint64_t bits = load_mbarrier(object);
  if (!is_mbarrier(bits)) return "not an initialised mbarrier";
  const MbarrierState s = decode_mbarrier(bits, object, "");
  return "phase of parity " + std::to_string(s.phase) + " current, " + std::to_string(s.pending) + " of " +
         std::to_string(s.expected) + " arrivals pending, tx-count " + std::to_string(s.tx);
}

}  // namespace simt::detail
