// NhwcConvProblem: one pass of a convolution as the channels_last tensor-core kernels see it, an
// implicit GEMM per group g over NHWC activations and KRSC (channels_last) filters:
//
//   out[m, g*Kg + n] = sum over (r, s, c) of  in[pixel(m, r, s), g*Cg + c] * filter[g*Kg + n, r, s, c]
//   m = (image, p, q) over M = N*P*Q output pixels, pixel(m, r, s) = (p*stride - pad + r*dil, ...)
//
// The output is an M x K row-major matrix (NHWC), the input N x H x W x C, the filter
// K x R x S x Cg: every operand is contiguous along the GEMM's k (channels), so tiles load as
// 16-byte vectors. fprop fills it from a convolution's ConvParams; dgrad is the same correlation
// of grad_output with the flipped, transposed filter, one problem per stride phase
// (nhwc_igemm_passes.cu).
//
// The output pixel of m = (image, p, q) is (image, out_h0 + out_stride_h * p, out_w0 + out_stride_w * q)
// of an image of out_H x out_W pixels: a strided dgrad's phase writes every out_stride-th pixel of
// dx, starting at its phase. A dense output (both strides 1: fprop, stride-1 dgrad) is out_H = P,
// out_W = Q, offsets 0, and its pixel is m itself.
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
  int out_H, out_W;                  // the output image
  int out_stride_h, out_stride_w;    // distance in it between output pixels p and p + 1
  int out_h0, out_w0;                // where output pixel (0, 0) lies in it

  C10_HOST_DEVICE int64_t M() const { return N * P * Q; }
  // The output pixel (image * out_H + h) * out_W + w that GEMM row m is stored to: one division
  // per stored row, in the epilogue only, and none where the output is dense.
  C10_HOST_DEVICE int64_t output_pixel(int64_t m) const {
    if (out_stride_h == 1 && out_stride_w == 1) return m;
    const int64_t PQ = int64_t{P} * Q;
    const int64_t image = m / PQ;
    const int pq = static_cast<int>(m - image * PQ);
    const int p = pq / Q, q = pq - p * Q;
    return (image * out_H + out_h0 + out_stride_h * p) * out_W + out_w0 + out_stride_w * q;
  }
  // Where out[m, group g, channel n] lies, and the distance between n and n + 1.
  C10_HOST_DEVICE int output_channel(int g, int n) const {
    return shuffle_output ? n * groups + g : g * k_per_group + n;
  }
};

}  // namespace convkernels::cuda::nhwc_igemm
