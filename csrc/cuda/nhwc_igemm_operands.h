// What the channels_last implicit GEMM passes (nhwc_igemm_passes.h, nhwc_igemm_wgrad.h) share on
// the host: the conditions under which any of them applies, and the relayout of their operands.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>

#include <ATen/core/Tensor.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/diag_embed.h>
#if defined(__CUDACC__)
#include <ATen/cuda/CUDAContext.h>
#endif

#include "../conv_params.h"

namespace convkernels::cuda {

// Channels rounded up to a whole number of 16-byte chunks of `dtype`.
inline int64_t padded_to_16_bytes(int64_t channels, at::ScalarType dtype) {
  const int64_t e = 16 / static_cast<int64_t>(c10::elementSize(dtype));
  return (channels + e - 1) / e * e;
}

// An NCHW-sized tensor of any memory format as the N x H x W x (groups * padded) contiguous block
// the kernels read: channels_last order, each group's channels zero-padded to `padded_channels`
// (a multiple of 16 bytes, or the channels themselves where several groups together are:
// GroupPacking::unpadded and sharing_chunks), 16-byte aligned.
inline at::Tensor nhwc_operand(const at::Tensor& t, int64_t groups, int64_t padded_channels) {
  const int64_t channels = t.size(1) / groups;
  at::Tensor nhwc = t.permute({0, 2, 3, 1});
  if (padded_channels != channels) {
    nhwc = at::constant_pad_nd(nhwc.reshape({t.size(0), t.size(2), t.size(3), groups, channels}),
                               {0, padded_channels - channels});
  }
  nhwc = nhwc.contiguous();
  // cp.async copies 16-byte chunks from 16-byte aligned addresses.
  if (reinterpret_cast<uintptr_t>(nhwc.const_data_ptr()) % 16 != 0) nhwc = nhwc.clone();
  return nhwc;
}

// How a pass's GEMM holds the convolution groups (NhwcConvProblem, NhwcWgradProblem): groups of
// `channels` channels (padded to 16 bytes) and `outputs` outputs. Groups that fill the tiles (16
// channels or more, more than 16 outputs) are GEMM groups of their own; smaller ones (ResNeXt's)
// are packed, each group's outputs padded to a multiple of `output_multiple`, as many to a GEMM
// group as fit 64 outputs and divide the groups. The outputs are padded to whole n8 tiles (8)
// where they are the GEMM's columns (fprop, dgrad), to 16-byte chunks of dy where they are its
// rows (wgrad).
struct GroupPacking {
  int64_t packed = 1, packed_c, packed_k, group_k;

  static bool groups_fill_tiles(int64_t groups, int64_t channels, int64_t outputs) {
    return groups == 1 || (channels >= 16 && outputs > 16);
  }

  GroupPacking(int64_t groups, int64_t channels, int64_t outputs, at::ScalarType dtype, int64_t output_multiple)
      : packed_c(padded_to_16_bytes(channels, dtype)), packed_k(outputs), group_k(outputs) {
    if (groups_fill_tiles(groups, channels, outputs)) return;
    const int64_t padded_k = round_up(outputs, output_multiple);
    packed = most_groups(groups, 64 / padded_k, [](int64_t) { return true; });
    if (packed > 1) packed_k = padded_k;
  }

  // Groups packed with no padding at all, as many as divide the groups, fit 64 rows and 32 groups
  // (DiagonalTiles' bit a group), and make whole 16-byte chunks of channels and of outputs
  // together: the weight gradient's GEMM can take them (its sum runs over pixels, so its products
  // never cross groups, and a chunk may hold several groups' channels). Channels come in pairs (a
  // lane stores dw's columns 2t and 2t + 1 together: they must be one group's). None where no such
  // number of groups exists, or where the groups fill the tiles on their own.
  static std::optional<GroupPacking> unpadded(int64_t groups, int64_t channels, int64_t outputs,
                                              at::ScalarType dtype) {
    if (groups_fill_tiles(groups, channels, outputs) || channels % 2 != 0) return std::nullopt;
    const int64_t size = static_cast<int64_t>(c10::elementSize(dtype));
    const int64_t n = most_groups(groups, std::min<int64_t>(64 / outputs, 32), [&](int64_t n) {
      return n * channels * size % 16 == 0 && n * outputs * size % 16 == 0;
    });
    if (n == 1) return std::nullopt;
    return GroupPacking(n, channels, outputs, outputs);
  }

  // Half-type groups of 2 or 4 channels (ResNeXt-50 32x4d's first stage) packed with their
  // channels unpadded, several to a 16-byte chunk, and outputs padded to `output_multiple`: fprop's
  // and dgrad's tensor-core GEMMs, whose warps zero each lane's A values of other groups' channels
  // before an n8 tile multiplies them (packed_groups.cuh), so that no product crosses groups. The
  // input is then read as it comes, at half the bytes of 4 channels padded to 8. Channels come in
  // pairs, a 32-bit register of an A fragment, which must be one group's. None where no number of
  // groups makes whole chunks, or where the groups fill the tiles on their own.
  static std::optional<GroupPacking> sharing_chunks(int64_t groups, int64_t channels, int64_t outputs,
                                                    at::ScalarType dtype, int64_t output_multiple) {
    const int64_t chunk = 16 / static_cast<int64_t>(c10::elementSize(dtype));
    if (c10::elementSize(dtype) != 2 || groups_fill_tiles(groups, channels, outputs) || channels % 2 != 0 ||
        channels >= chunk || chunk % channels != 0) {
      return std::nullopt;
    }
    const int64_t padded_k = round_up(outputs, output_multiple);
    const int64_t n = most_groups(groups, 64 / padded_k, [&](int64_t n) { return n * channels % chunk == 0; });
    if (n == 1) return std::nullopt;
    return GroupPacking(n, channels, padded_k, outputs);
  }

  // A GEMM group's channels and columns.
  int64_t gemm_c() const { return packed * packed_c; }
  int64_t gemm_k() const { return packed * packed_k; }

  // The KRSC filters of the GEMM groups for `weight`, an NCHW-sized (groups * outputs) x channels
  // x R x S tensor: each GEMM group's block-diagonal, the blocks padded with zeros.
  at::Tensor filters(const at::Tensor& weight, int64_t groups) const {
    if (packed == 1) return nhwc_operand(weight, 1, packed_c);
    const int64_t channels = weight.size(1), R = weight.size(2), S = weight.size(3);
    // (GEMM group, convolution group i in it, output, channel, r, s), outputs and channels padded,
    // then i moved last and put on the diagonal of (i, i') with zeros elsewhere (no product with
    // a zero, which would turn an infinite weight into NaN).
    const at::Tensor blocks = at::constant_pad_nd(weight.reshape({groups / packed, packed, group_k, channels, R, S}),
                                                  {0, 0, 0, 0, 0, packed_c - channels, 0, packed_k - group_k});
    return at::diag_embed(blocks.permute({0, 2, 4, 5, 3, 1}), 0, 1, 5)
        .reshape({groups / packed * gemm_k(), R, S, gemm_c()});
  }

 private:
  static int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

  // The most groups a GEMM group packs: the largest n, from `most` down to 2, that divides the
  // groups and that fits(n) accepts; 1 where none does.
  template <class Fits>
  static int64_t most_groups(int64_t groups, int64_t most, Fits&& fits) {
    for (int64_t n = std::min(groups, most); n > 1; --n) {
      if (groups % n == 0 && fits(n)) return n;
    }
    return 1;
  }

  GroupPacking(int64_t packed, int64_t channels, int64_t packed_k, int64_t outputs)
      : packed(packed), packed_c(channels), packed_k(packed_k), group_k(outputs) {}
};

// A size for the kernels' 32-bit problem fields, which each pass's own range check has bounded.
inline int narrow(int64_t size) { return static_cast<int>(size); }

// The conditions every channels_last GEMM pass shares:
//  - cp.async, on sm_80 and later (the emulator has it);
//  - not depthwise: depthwise convolutions have kernels of their own;
//  - relayouts under 2^31 elements: padding each group's channels to 16 bytes would make a
//    1-channel image of 2^31 pixels a copy of 8 times its size.
inline bool nhwc_igemm_operands_fit(const ConvParams& p, at::ScalarType dtype) {
#if defined(__CUDACC__)
  if (at::cuda::getCurrentDeviceProperties()->major < 8) return false;
#endif
  const int64_t input = p.N * p.H * p.W * p.groups * padded_to_16_bytes(p.c_per_group(), dtype);
  const int64_t output = p.N * p.P * p.Q * p.groups * padded_to_16_bytes(p.k_per_group(), dtype);
  return !p.is_depthwise() && std::max(input, output) < std::numeric_limits<int32_t>::max();
}

}  // namespace convkernels::cuda
