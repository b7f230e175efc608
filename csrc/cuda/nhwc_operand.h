// nhwc_operand: an NCHW-sized activation of any memory format as the N x H x W x (groups * padded)
// contiguous block the channels_last tensor-core kernels read: channels_last order, each group's
// channels zero-padded to `padded_channels` (a multiple of 16 bytes), 16-byte aligned.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <ATen/ops/constant_pad_nd.h>

namespace convkernels::cuda {

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

// Channels rounded up to a whole number of 16-byte chunks of `dtype`.
inline int64_t padded_to_16_bytes(int64_t channels, at::ScalarType dtype) {
  const int64_t e = 16 / static_cast<int64_t>(c10::elementSize(dtype));
  return (channels + e - 1) / e * e;
}

}  // namespace convkernels::cuda
