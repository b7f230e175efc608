// FilterTapCursor: which slice of the GEMM's k the mainloop's current stage loads. k runs over
// (r, s, c) with the channel c fastest, a stage taking kChannels channels of one filter tap; the
// last stage of a tap is masked past c_per_group. Both operand iterators read the cursor, and it
// moves by additions only: the main loop divides nothing.
#pragma once

#include <cstdint>

#include "problem.cuh"

namespace convkernels::cuda::nhwc_igemm {

struct FilterTapCursor {
  int c = 0;                  // first channel of the stage (within the group)
  int s = 0;                  // filter column
  int dh = 0, dw = 0;         // r * dil_h and s * dil_w: the tap's reach into the input
  int64_t image_offset = 0;   // (r * dil_h * W + s * dil_w) * C: the tap's offset in the input
  int64_t filter_offset = 0;  // (r * S + s) * c_per_group: the tap's offset in a filter

  // k-steps of the whole GEMM: every tap, ceil(c_per_group / kChannels) stages each.
  C10_HOST_DEVICE static int64_t steps(const NhwcConvProblem& p, int kChannels) {
    return int64_t{p.R} * p.S * ((p.c_per_group + kChannels - 1) / kChannels);
  }

  __device__ void advance(const NhwcConvProblem& p, int kChannels) {
    c += kChannels;
    if (c < p.c_per_group) return;
    c = 0;
    filter_offset += p.c_per_group;
    if (++s < p.S) {
      dw += p.dil_w;
      image_offset += int64_t{p.dil_w} * p.C;
      return;
    }
    s = 0;
    image_offset += (int64_t{p.dil_h} * p.W - dw) * p.C;
    dw = 0;
    dh += p.dil_h;
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
