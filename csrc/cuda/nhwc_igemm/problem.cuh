// NhwcConvProblem: one pass of a convolution as the channels_last tensor-core kernels see it, an
// implicit GEMM per group g over NHWC activations and KRSC (channels_last) filters:
//
//   out[m, g*Kg + n] = sum over (r, s, c) of  in[pixel(m, r, s), g*Cg + c] * filter[g*Kg + n, r, s, c]
//   m = (image, p, q) over M = N*P*Q output pixels, pixel(m, r, s) = (p*stride - pad + r*dil, ...)
//
// The output is an M x K row-major matrix (NHWC), the input N x H x W x C, the filter
// K x R x S x Cg: every operand is contiguous along the GEMM's k (channels), so tiles load as
// 16-byte vectors. fprop fills it from a convolution's ConvParams; dgrad at stride 1 is the same
// correlation of grad_output with the flipped, transposed filter (tensor_core_passes.cuh).
#pragma once

#include <cstdint>

#include <c10/macros/Macros.h>

namespace convkernels::cuda::nhwc_igemm {

struct NhwcConvProblem {
  int64_t N;
  int H, W, C;  // input; C = groups * c_per_group channels per pixel
  int P, Q, K;  // output; K = groups * k_per_group channels per pixel
  int R, S;
  int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int groups, c_per_group, k_per_group;
  bool shuffle_output;  // output channel n of group g goes to channel n*groups + g (ShuffleNet)

  C10_HOST_DEVICE int64_t M() const { return N * P * Q; }
  // Where out[m, group g, channel n] lies, and the distance between n and n + 1.
  C10_HOST_DEVICE int output_channel(int g, int n) const {
    return shuffle_output ? n * groups + g : g * k_per_group + n;
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
