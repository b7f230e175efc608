// NhwcWgradProblem: the weight gradient as the channels_last tensor-core kernel sees it, a GEMM per
// group g whose depth is the output pixels:
//
//   dw[g*Kg + k, r, s, c] = sum over (n, p, q) of dy[n, p, q, g*Kg + k] * x[n, h(p, r), w(q, s), g*Cg + c]
//   h(p, r) = p*stride_h - pad_h + r*dil_h,  w(q, s) = q*stride_w - pad_w + s*dil_w
//
// M = Kg (output channels), N = R*S*Cg (filter tap-major, then channel), GEMM-K = N*P*Q pixels.
// A block's N tile is kBlockN consecutive columns: one tap's run of channels where Cg is large,
// several whole taps where it is small (3 channels padded to 8: eight taps per 64 columns), so no
// tile is mostly padding. A 16-byte chunk of a B row never straddles two taps (Cg is padded).
// dy (N x P x Q x K) and x (N x H x W x C) are NHWC with each group's channels padded with zeros to
// a multiple of 16 bytes (k_per_group, c_per_group); filter_k and filter_c are the real counts.
// GEMM-K is cut into `splits` ranges of pixels_per_split pixels, one block per range and tile.
//
// Packed (packed > 1): a GEMM group holds `packed` convolution groups of fewer than 16 channels
// (nhwc_igemm_operands.h's GroupPacking), each packed_k outputs and packed_c channels (padded), so
// that row m and column (tap, c) belong to convolution groups m / packed_k and c / packed_c; only
// the pairs of one group are dw, and the warps skip the MMA tiles that hold none (packed_groups.cuh).
// Unpacked, packed_k = k_per_group and packed_c = c_per_group: one group per GEMM group.
#pragma once

#include <cstdint>

#include <c10/macros/Macros.h>

namespace convkernels::cuda::nhwc_igemm {

struct NhwcWgradProblem {
  int64_t N;
  int H, W, C;  // input; C = groups * c_per_group
  int P, Q, K;  // grad_output; K = groups * k_per_group
  int R, S;
  int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int groups, c_per_group, k_per_group;  // GEMM groups, and their channels and outputs
  int packed, packed_c, packed_k;        // convolution groups per GEMM group, their channels and outputs
  int filter_c, filter_k;    // channels per convolution group of the filter (the padded ones are not stored)
  int splits;
  int64_t pixels_per_split;  // a multiple of the tile's pixels per stage
  // A stage's pixels as images, rows and columns: Tile::kBlockK = (stage_n*P + stage_p)*Q + stage_q
  // with stage_p < P and stage_q < Q.
  int64_t stage_n;
  int stage_p, stage_q;

  C10_HOST_DEVICE int64_t pixels() const { return N * P * Q; }
  // The GEMM's rows that hold an output channel of the filter.
  C10_HOST_DEVICE int gemm_rows() const { return (packed - 1) * packed_k + filter_k; }
  // Floats per split of the workspace: dw of every convolution group in (K, R, S, C) order, real channels.
  C10_HOST_DEVICE int64_t filter_numel() const { return int64_t{groups} * packed * filter_k * R * S * filter_c; }
};

}  // namespace convkernels::cuda::nhwc_igemm
