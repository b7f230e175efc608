// Warp collectives with CUDA's semantics: warp size 32, lanes formed from the linear thread index.
// The non-exited lanes named in the mask rendezvous (BlockSync), then each receives its result; the
// rest of the block is not synchronised. A shuffle moves any trivially copyable value of up to 8
// bytes (int, float, double, __half, __half2, __nv_bfloat16, ...).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "block_sync.h"
#include "error.h"
#include "thread_context.h"

namespace simt::detail {

inline unsigned lane_of(unsigned tid) { return tid % kWarpSize; }

inline void check_mask(const char* op, unsigned mask, unsigned tid) {
  if (!(mask >> lane_of(tid) & 1u)) {
    throw Error(std::string("simt: thread ") + std::to_string(tid) + " (lane " + std::to_string(lane_of(tid)) +
                ") called " + op + " with a mask that excludes it");
  }
}

// The lane whose value `lane` receives, following the shfl.sync pseudo-code of the PTX ISA: the
// operand counts modulo 32, width splits the warp into segments, and a source outside the lane's
// segment (above it, for xor) yields the lane's own value.
inline unsigned shuffle_source(WarpOp op, unsigned lane, unsigned operand, unsigned width) {
  const unsigned b = operand % kWarpSize;
  const unsigned first = lane & ~(width - 1);
  const unsigned last = first + width - 1;
  switch (op) {
    case WarpOp::shfl: return first | (b & (width - 1));
    case WarpOp::shfl_up: return lane >= first + b ? lane - b : lane;
    case WarpOp::shfl_down: return lane + b <= last ? lane + b : lane;
    case WarpOp::shfl_xor: return (lane ^ b) <= last ? lane ^ b : lane;
    default: return lane;
  }
}

template <class T>
T shuffle(WarpOp op, unsigned mask, T value, unsigned operand, int width) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(uint64_t),
                "warp shuffles move trivially copyable values of at most 8 bytes");
  if (width < 1 || width > static_cast<int>(kWarpSize) || (width & (width - 1)) != 0) {
    throw Error(std::string("simt: ") + warp_op_name(op) + " width " + std::to_string(width) +
                " is not a power of two in [1, 32]");
  }
  const ThreadContext& thread = this_thread();
  const unsigned lane = lane_of(thread.tid);
  check_mask(warp_op_name(op), mask, thread.tid);
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  bits = thread.block->warp_collective(
      thread.tid, WarpCall{op, mask, shuffle_source(op, lane, operand, static_cast<unsigned>(width)), bits});
  std::memcpy(static_cast<void*>(&value), &bits, sizeof(T));  // T may be a class such as __half
  return value;
}

inline uint64_t vote(unsigned mask, int predicate) {
  const ThreadContext& thread = this_thread();
  check_mask("a vote", mask, thread.tid);
  return thread.block->warp_collective(thread.tid, WarpCall{WarpOp::vote, mask, 0, predicate != 0});
}

}  // namespace simt::detail

template <class T>
T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize) {
  return simt::detail::shuffle(simt::detail::WarpOp::shfl, mask, var, static_cast<unsigned>(srcLane), width);
}

template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return simt::detail::shuffle(simt::detail::WarpOp::shfl_up, mask, var, delta, width);
}

template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return simt::detail::shuffle(simt::detail::WarpOp::shfl_down, mask, var, delta, width);
}

template <class T>
T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize) {
  return simt::detail::shuffle(simt::detail::WarpOp::shfl_xor, mask, var, static_cast<unsigned>(laneMask), width);
}

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  const auto& thread = simt::detail::this_thread();
  simt::detail::check_mask("__syncwarp", mask, thread.tid);
  thread.block->warp_collective(thread.tid, simt::detail::WarpCall{simt::detail::WarpOp::syncwarp, mask, 0, 0});
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return static_cast<unsigned>(simt::detail::vote(mask, predicate));
}

inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }

// True when the predicate holds on every lane taking part (exited lanes named in the mask do not).
inline int __all_sync(unsigned mask, int predicate) {
  const uint64_t result = simt::detail::vote(mask, predicate);
  return static_cast<unsigned>(result) == static_cast<unsigned>(result >> 32);
}
