// What an emulated kernel tells the counters (counters.h): every memory access an instruction
// makes, one call per thread, the bulk copies it issues and the math operations. The emulated
// instructions (cp.async, cp.async.bulk, ldmatrix, mma) and the portable load/store accessors
// (simt.h) call these; with no counter session active they cost a branch.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "counters.h"
#include "instrument_kinds.h"

namespace simt::detail {

// One thread's access of `bytes` bytes at `address` (1 to 16: a cp.async reads its src-size; 0 for
// a thread that executes the instruction but moves nothing, e.g. a zero-filling cp.async). The accesses of the
// lanes of a warp that come from the same call site (`line`, `file`: the caller's, by default) in
// the same order form one warp-wide request.
inline void note_access(MemorySpace space, AccessKind kind, const void* address, unsigned bytes,
                        unsigned line = __builtin_LINE(), const char* file = __builtin_FILE()) {
  if (!counting.load(std::memory_order_relaxed)) return;
  with_recorder([&](BlockRecorder& r) { r.access(space, kind, address, bytes, line, file); });
}

// A bulk copy (cp.async.bulk, cp.async.bulk.tensor) issued by the calling thread: one instruction,
// not part of any warp-wide request, that reads its pieces' global bytes (fill pieces read nothing).
inline void note_bulk_copy(const BulkCopy& copy) {
  if (!counting.load(std::memory_order_relaxed)) return;
  std::vector<LaneAccess> source;
  for (const CopyPiece& piece : copy.pieces) {
    if (piece.src != nullptr) source.push_back(LaneAccess{reinterpret_cast<uintptr_t>(piece.src), piece.bytes, 0});
  }
  with_recorder([&](BlockRecorder& r) { r.bulk_copy(source); });
}

// `count` operations of kind `op` issued by the calling thread (mma: by the calling warp, noted by
// its lane 0).
inline void note_math(MathOp op, uint64_t count) {
  if (!counting.load(std::memory_order_relaxed)) return;
  with_recorder([&](BlockRecorder& r) { r.math(op, count); });
}

// The calling thread begins or ends trip `trip` of a loop that names its trips (simt::LoopTrip).
inline void note_trip_begin(uint64_t trip) {
  if (!counting.load(std::memory_order_relaxed)) return;
  with_recorder([&](BlockRecorder& r) { r.begin_trip(trip); });
}
inline void note_trip_end() {
  if (!counting.load(std::memory_order_relaxed)) return;
  with_recorder([](BlockRecorder& r) { r.end_trip(); });
}

// The calling thread arrives at __syncthreads.
inline void note_barrier() {
  if (!counting.load(std::memory_order_relaxed)) return;
  with_recorder([](BlockRecorder& r) { r.barrier(); });
}

}  // namespace simt::detail
