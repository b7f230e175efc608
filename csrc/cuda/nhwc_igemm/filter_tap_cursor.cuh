// FilterTapCursor: which slice of the GEMM's k the mainloop's current stage loads. k runs over
// (r, s, c) with the channel c fastest. A stage takes kChannels channels of one filter tap, the
// last stage of a tap masked past c_per_group. Where a group's channels are fewer and divide
// kChannels (taps_per_stage > 1, at most S), a stage takes whole taps instead, each 16-byte chunk
// (or 8-byte piece, chunk_copies.cuh) in one of them, and the taps past the filter are masked
// (kPastTheFilter): a first layer's 3 channels would otherwise leave 3 of a stage's 4 chunks zeros. Then each thread has a cursor of
// its own, on its chunk's tap. Both operand iterators read the thread's cursor, and it moves by
// additions only: the main loop divides nothing.
#pragma once

#include <cstdint>

#include "problem.cuh"

namespace convkernels::cuda::nhwc_igemm {

struct FilterTapCursor {
  static constexpr int kPastTheFilter = 1 << 30;

  // The stage's first channel in its tap, less the thread's chunk's tap offset; kPastTheFilter
  // once the cursor has left the filter's last row, which masks every chunk as past the channels
  // (no compare of its own in the copies, and no register for the row).
  int c = 0;
  int s = 0;                  // filter column
  int dh = 0, dw = 0;         // r * dil_h and s * dil_w: the tap's reach into the input
  int64_t image_offset = 0;   // (r * dil_h * W + s * dil_w) * C: the tap's offset in the input
  int64_t filter_offset = 0;  // (r * S + s) * c_per_group: the tap's offset in a filter

  // k-steps of the whole GEMM: every tap, ceil(c_per_group / kChannels) stages each, or
  // taps_per_stage taps a stage.
  template <bool kSeveralTaps>
  C10_HOST_DEVICE static int64_t steps(const NhwcConvProblem& p, int kChannels) {
    const int64_t taps = int64_t{p.R} * p.S;
    if (kSeveralTaps) return (taps + p.taps_per_stage - 1) / p.taps_per_stage;
    return taps * ((p.c_per_group + kChannels - 1) / kChannels);
  }

  // Where a stage holds several taps, the first stage's cursor of a thread whose chunk starts at
  // element `channel` of a stage: the chunk's own tap, with c + channel its channel in that tap (a
  // chunk past the stage's taps is masked throughout).
  __device__ static FilterTapCursor first(const NhwcConvProblem& p, int channel) {
    FilterTapCursor at;
    const int tap = channel / p.c_per_group;
    at.c = tap < p.taps_per_stage ? -tap * p.c_per_group : kPastTheFilter;
    at.move<true>(p, tap < p.taps_per_stage ? tap : 0);
    return at;
  }

  // The next stage's cursor; kSeveralTaps: p.taps_per_stage > 1.
  template <bool kSeveralTaps>
  __device__ void advance(const NhwcConvProblem& p, int kChannels) {
    if constexpr (kSeveralTaps) {
      move<true>(p, p.taps_per_stage);
      return;
    }
    c += kChannels;
    if (c < p.c_per_group) return;
    c = 0;
    move<false>(p, 1);
  }

 private:
  // `taps` taps on: one without kSeveral, at most S with it (so at most one row boundary is
  // crossed), where past the filter's last row c becomes kPastTheFilter.
  template <bool kSeveral>
  __device__ void move(const NhwcConvProblem& p, int taps) {
    filter_offset += int64_t{taps} * p.c_per_group;
    s += taps;
    if (s < p.S) {
      dw += taps * p.dil_w;
      image_offset += int64_t{taps} * p.dil_w * p.C;
      return;
    }
    s = kSeveral ? s - p.S : 0;
    const int next_dw = kSeveral ? s * p.dil_w : 0;
    image_offset += (int64_t{p.dil_h} * p.W + next_dw - dw) * p.C;
    dw = next_dw;
    dh += p.dil_h;
    if (kSeveral && dh >= p.R * p.dil_h) c = kPastTheFilter;
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
