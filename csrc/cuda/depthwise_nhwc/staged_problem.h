// StagedProblem: what the staged channels_last depthwise kernel (staged_kernel.cuh) computes, at
// multiplier 1, along each of its two axes (StagedAxis):
//  - the forward correlation
//      y[n, p, q, k] = bias[k] + sum over r, s of w[k, r, s] * x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, k];
//  - or its input gradient (conv_transpose2d's forward), dx from dy, as one correlation of dy per
//    stride phase (StridePhase, ../stride_phase.h), so that no product is one with the zeros a
//    strided transposed convolution inserts. At unit stride that is the flipped filter's
//    correlation with padding (R-1)*dil - pad (negative where the padding passes the filter's
//    reach).
#pragma once

#include <algorithm>
#include <cstdint>

#include <c10/macros/Macros.h>

#include "../../conv_params.h"
#include "../stride_phase.h"

namespace convkernels::cuda::depthwise_nhwc {

// One stride phase of an axis, as a correlation: output v reads source index
// v * stride - pad + j * dilation through its tap j < taps, which is filter tap
// first_tap + j * tap_step; it lands at output index first_output + v * phases.
struct PhaseAxis {
  int64_t pad;
  int64_t taps;  // 0: the phase's outputs are the bias alone
  int64_t first_tap, tap_step;
  int64_t outputs;  // of the phase
  int64_t first_output;
};

struct StagedAxis {
  int64_t source, output;  // sizes of the source (x, or dy) and the output (y, or dx) along the axis
  int64_t filter, conv_stride, conv_dilation, conv_pad;  // the convolution's, as torch states them
  bool transposed;  // the input gradient: outputs in stride phases
  // Of the correlations (the same for every phase): their stride and dilation.
  int64_t stride, dilation;
  // Over the phases that read any tap: the source indices a tile of outputs reads before its
  // first output's (lead) and in all (span, for one output).
  int64_t lead, span;
  int64_t max_outputs;  // of any phase: phase 0's

  C10_HOST_DEVICE int64_t phases() const { return transposed ? conv_stride : 1; }

  C10_HOST_DEVICE PhaseAxis phase(int64_t f) const {
    if (!transposed) return {conv_pad, filter, 0, 1, output, 0};
    const StridePhase s(f, output, conv_stride, conv_pad, filter, conv_dilation);
    return {s.pad, s.count, s.last, -s.step, s.outputs, f};
  }

  static StagedAxis forward(int64_t source, int64_t output, int64_t filter, int64_t stride, int64_t dilation,
                            int64_t pad) {
    return with_extents({source, output, filter, stride, dilation, pad, false, stride, dilation});
  }

  // source: dy's size; output: dx's.
  static StagedAxis input_gradient(int64_t source, int64_t output, int64_t filter, int64_t stride,
                                   int64_t dilation, int64_t pad) {
    const int64_t phase_dilation = StridePhase(0, output, stride, pad, filter, dilation).dil;
    return with_extents({source, output, filter, stride, dilation, pad, true, 1, phase_dilation});
  }

 private:
  static StagedAxis with_extents(StagedAxis axis) {
    int64_t lead = INT64_MIN, last = INT64_MIN;  // last: the farthest source index past output 0's
    for (int64_t f = 0; f < axis.phases(); ++f) {
      const PhaseAxis a = axis.phase(f);
      if (a.taps == 0) continue;
      lead = std::max(lead, a.pad);
      last = std::max(last, (a.taps - 1) * axis.dilation - a.pad);
    }
    axis.lead = lead;
    axis.span = last + lead + 1;
    axis.max_outputs = axis.phase(0).outputs;
    return axis;
  }
};

struct StagedProblem {
  int64_t images, channels;
  StagedAxis rows, cols;

  C10_HOST_DEVICE int64_t phases() const { return rows.phases() * cols.phases(); }

  static StagedProblem forward(const ConvParams& p) {
    return {p.N, p.K, StagedAxis::forward(p.H, p.P, p.R, p.stride_h, p.dil_h, p.pad_h),
            StagedAxis::forward(p.W, p.Q, p.S, p.stride_w, p.dil_w, p.pad_w)};
  }

  static StagedProblem input_gradient(const ConvParams& p) {
    return {p.N, p.C, StagedAxis::input_gradient(p.P, p.H, p.R, p.stride_h, p.dil_h, p.pad_h),
            StagedAxis::input_gradient(p.Q, p.W, p.S, p.stride_w, p.dil_w, p.pad_w)};
  }
};

}  // namespace convkernels::cuda::depthwise_nhwc
