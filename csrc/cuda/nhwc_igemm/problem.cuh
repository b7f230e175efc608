// NhwcConvProblem: one pass of a convolution as the channels_last tensor-core kernels see it, an
// implicit GEMM per group g over NHWC activations and KRSC (channels_last) filters:
//
//   out[m, g*Kg + n] = sum over (r, s, c) of  in[pixel(m, r, s), g*Cg + c] * filter[g*Kg + n, r, s, c]
//   m = (image, p, q) over M = N*P*Q output pixels, pixel(m, r, s) = (p*stride - pad + r*dil, ...)
//
// The output is an M x K row-major matrix (NHWC), the input N x H x W x C, the filter
// K x R x S x Cg: every operand is contiguous along the GEMM's k (channels), so tiles load as
// 16-byte vectors.
//
// Small groups (ResNeXt's 4-16 channels) would leave a tile mostly padding, so a GEMM group may
// pack several convolution groups: GEMM group g holds convolution groups g*packed + i, i < packed,
// each with packed_c of its c_per_group channels (the group's channels padded to 16 bytes, or
// unpadded where half-type groups of 2 or 4 share chunks, GroupPacking::sharing_chunks) and
// packed_k of its k_per_group columns (the group's group_k outputs padded to a whole n8 tile), and
// its filters are block-diagonal. The warps multiply only the diagonal blocks
// (packed_groups.cuh): a product across groups would be 0 x Inf = NaN where an input is infinite.
// Unpacked, packed = 1, packed_c = c_per_group and packed_k = group_k = k_per_group. fprop fills
// it from a convolution's ConvParams; dgrad is the same correlation of grad_output with the
// flipped, transposed filter, one problem per stride phase (nhwc_igemm_passes.cu).
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
  int packed, packed_c, packed_k, group_k;  // convolution groups per GEMM group, and their extent
  // Filter taps a stage holds (filter_tap_cursor.cuh): several where a group's channels are a
  // whole number of 16-byte chunks fewer than a stage's (a first layer's 3, padded to one chunk),
  // else 1.
  int taps_per_stage;

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
  // Column n of GEMM group g: output channel k of convolution group `group`, or padding.
  struct Column {
    int group, k;
    C10_HOST_DEVICE bool is_output() const { return k >= 0; }
  };
  C10_HOST_DEVICE Column column(int g, int n) const {
    const int i = n / packed_k, k = n - i * packed_k;
    return {g * packed + i, k < group_k ? k : -1};
  }
  // Where an output column's channel lies in an output pixel, and its bias.
  C10_HOST_DEVICE int output_channel(Column c) const {
    return shuffle_output ? c.k * groups * packed + c.group : bias_index(c);
  }
  C10_HOST_DEVICE int bias_index(Column c) const { return c.group * group_k + c.k; }
};

}  // namespace convkernels::cuda::nhwc_igemm
