// The emulator's side of the portable accessors (simt.h): simt::ld_global, st_global, ld_shared,
// st_shared, note_fma and LoopTrip do what their nvcc versions do and tell the counters (instrument.h). The
// call site (line, file) is the caller's, so that a warp's lanes executing one accessor call are
// grouped into one request.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "instrument.h"
#include "thread_context.h"

namespace simt {
namespace detail {

// An object wider than 16 bytes (a Fragment<double>) is moved by several 16-byte instructions.
template <class T>
void note_object(MemorySpace space, AccessKind kind, const T* address, unsigned line, const char* file) {
  constexpr unsigned kWidest = 16;
  const char* bytes = reinterpret_cast<const char*>(address);
  for (unsigned offset = 0; offset < sizeof(T); offset += kWidest) {
    note_access(space, kind, bytes + offset, std::min<unsigned>(kWidest, sizeof(T) - offset), line, file);
  }
}

}  // namespace detail

template <class T>
T ld_global(const T* address, unsigned line = __builtin_LINE(), const char* file = __builtin_FILE()) {
  detail::note_object(detail::MemorySpace::global, detail::AccessKind::load, address, line, file);
  return *address;
}

template <class T>
void st_global(T* address, const std::common_type_t<T>& value, unsigned line = __builtin_LINE(),
               const char* file = __builtin_FILE()) {
  detail::note_object(detail::MemorySpace::global, detail::AccessKind::store, address, line, file);
  *address = value;
}

template <class T>
T ld_shared(const T* address, unsigned line = __builtin_LINE(), const char* file = __builtin_FILE()) {
  detail::check_shared_bounds(address, sizeof(T), "a shared-memory load");
  detail::note_object(detail::MemorySpace::shared, detail::AccessKind::load, address, line, file);
  return *address;
}

template <class T>
void st_shared(T* address, const std::common_type_t<T>& value, unsigned line = __builtin_LINE(),
               const char* file = __builtin_FILE()) {
  detail::check_shared_bounds(address, sizeof(T), "a shared-memory store");
  detail::note_object(detail::MemorySpace::shared, detail::AccessKind::store, address, line, file);
  *address = value;
}

// `count` fused multiply-adds of acc_t (float: ffma, double: dfma) issued by the calling thread.
template <class acc_t>
void note_fma(uint64_t count) {
  static_assert(std::is_same_v<acc_t, float> || std::is_same_v<acc_t, double>, "FMAs are float or double");
  detail::note_math(std::is_same_v<acc_t, double> ? detail::MathOp::dfma : detail::MathOp::ffma, count);
}

// Names trip `trip` of a loop in whose trips a warp's lanes run a line different numbers of times
// (each trip walks a share of work that is longer for some lanes), for the scope of the trip's
// body: the counters then group a line's executions into warp requests within a trip, as the GPU
// issues them, rather than by their count since the barrier.
class LoopTrip {
 public:
  explicit LoopTrip(int64_t trip) { detail::note_trip_begin(static_cast<uint64_t>(trip)); }
  ~LoopTrip() { detail::note_trip_end(); }
  LoopTrip(const LoopTrip&) = delete;
  LoopTrip& operator=(const LoopTrip&) = delete;
};

}  // namespace simt
