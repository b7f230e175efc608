// The channels_last tensor-core passes (tensor_core_passes.h) and the kernel's instantiations.
#include "tensor_core_passes.h"

#include <cstdint>
#include <limits>

#include <ATen/Dispatch.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>
#if defined(__CUDACC__)
#include <ATen/cuda/CUDAContext.h>
#endif

#include "../float32_precision.h"
#include "cuda_kernels.h"
#include "nhwc_igemm/conv_kernel.cuh"

namespace convkernels::cuda {
namespace {

using nhwc_igemm::NhwcConvProblem;

int64_t elements_per_16_bytes(at::ScalarType dtype) { return 16 / static_cast<int64_t>(c10::elementSize(dtype)); }

int64_t padded(int64_t channels, at::ScalarType dtype) {
  const int64_t e = elements_per_16_bytes(dtype);
  return (channels + e - 1) / e * e;
}

// Every floating type, on a device with cp.async (sm_80+; the emulator has it).
bool has_async_copies() {
#if defined(__CUDACC__)
  return at::cuda::getCurrentDeviceProperties()->major >= 8;
#else
  return true;
#endif
}

// The kernel computes pixel coordinates and counts k-steps in 32-bit integers.
bool fits_int32(const ConvParams& p) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  const auto reach = [](int64_t out, int64_t stride, int64_t pad, int64_t taps, int64_t dil) {
    return (out - 1) * stride + pad + (taps - 1) * dil;
  };
  return std::max({p.H, p.W, p.C, p.K, p.P, p.Q, reach(p.P, p.stride_h, p.pad_h, p.R, p.dil_h),
                   reach(p.Q, p.stride_w, p.pad_w, p.S, p.dil_w), reach(p.H, 1, 0, p.R, p.dil_h),
                   reach(p.W, 1, 0, p.S, p.dil_w), p.R * p.S * p.C}) < kMax / 2;
}

// The relayouts pad each group's channels to 16 bytes: not where that would make a copy past 2^31
// elements (a 1-channel image of 2^31 pixels would take 8 times its size), which also keeps every
// operand of the kernel within 32-bit element counts a dimension.
bool relayouts_fit(const ConvParams& p, at::ScalarType dtype) {
  const int64_t input = p.N * p.H * p.W * p.groups * padded(p.c_per_group(), dtype);
  const int64_t output = p.N * p.P * p.Q * p.groups * padded(p.k_per_group(), dtype);
  return std::max(input, output) < std::numeric_limits<int32_t>::max();
}

// A size that fits_int32 has checked.
int narrow(int64_t size) { return static_cast<int>(size); }

// An NCHW-sized tensor of any memory format as the N x H x W x (groups * padded) contiguous block
// the kernel reads: channels_last order, each group's channels zero-padded to `padded_channels`,
// and a fresh copy where the data does not start on 16 bytes.
at::Tensor nhwc_operand(const at::Tensor& t, int64_t groups, int64_t padded_channels) {
  const int64_t channels = t.size(1) / groups;
  at::Tensor nhwc = t.permute({0, 2, 3, 1});
  if (padded_channels != channels) {
    nhwc = at::constant_pad_nd(nhwc.reshape({t.size(0), t.size(2), t.size(3), groups, channels}),
                               {0, padded_channels - channels});
  }
  nhwc = nhwc.contiguous();
  if (reinterpret_cast<uintptr_t>(nhwc.const_data_ptr()) % 16 != 0) nhwc = nhwc.clone();
  return nhwc;
}

template <typename T, class Math>
void run(const NhwcConvProblem& problem, const at::Tensor& in, const at::Tensor& filters, const at::Tensor& bias,
         const at::Tensor& output, cudaStream_t stream) {
  // The output is written in place when it is channels_last and 16-byte aligned (conv_ops
  // allocates it so), else through a temporary.
  const bool in_place = output.is_contiguous(at::MemoryFormat::ChannelsLast) &&
                        reinterpret_cast<uintptr_t>(output.const_data_ptr()) % 16 == 0;
  const at::Tensor out =
      in_place ? output : at::empty(output.sizes(), output.options().memory_format(at::MemoryFormat::ChannelsLast));
  nhwc_igemm::launch_channels_last_igemm<T, Math>(problem, in.const_data_ptr<T>(), filters.const_data_ptr<T>(),
                                                  optional_data<T>(bias), out.mutable_data_ptr<T>(), stream);
  if (!in_place) output.copy_(out);
}

// Half types on tensor cores; float32 there in TF32 where torch allows it or in 3xTF32 where
// set_float32_precision asks for it, else on CUDA cores with float64.
void run_dispatched(const NhwcConvProblem& problem, const at::Tensor& in, const at::Tensor& filters,
                    const at::Tensor& bias, const at::Tensor& output, bool allow_tf32, cudaStream_t stream) {
  using nhwc_igemm::CudaCoreMath, nhwc_igemm::TensorCoreMath, nhwc_igemm::ThreeTf32Math;
  const auto with = [&](auto run_typed) { run_typed(problem, in, filters, bias, output, stream); };
  AT_DISPATCH_SWITCH(in.scalar_type(), "channels_last_igemm",
                     AT_DISPATCH_CASE(at::kHalf, [&] { with(run<scalar_t, TensorCoreMath>); })
                     AT_DISPATCH_CASE(at::kBFloat16, [&] { with(run<scalar_t, TensorCoreMath>); })
                     AT_DISPATCH_CASE(at::kFloat, [&] {
                       if (float32_precision() == Float32Precision::three_tf32) {
                         with(run<float, ThreeTf32Math>);
                       } else {
                         allow_tf32 ? with(run<float, TensorCoreMath>) : with(run<float, CudaCoreMath>);
                       }
                     })
                     AT_DISPATCH_CASE(at::kDouble, [&] { with(run<double, CudaCoreMath>); }));
}

}  // namespace

// Groups fill the tiles: a stage takes 64 bytes of a group's channels per tap and a block at least
// 64 output channels, so small groups (ResNeXt's 4-16 channels) would multiply mostly zeros; the
// generation-1 GEMM's narrow tile wastes less there until a kernel packs several groups per block.
// Depthwise convolutions have kernels of their own.
bool groups_fill_tiles(const ConvParams& p) {
  return p.groups == 1 || (p.c_per_group() >= 16 && p.k_per_group() > 16);
}

bool tensor_core_fprop_applies(const ConvParams& p, at::ScalarType dtype) {
  return has_async_copies() && groups_fill_tiles(p) && fits_int32(p) && relayouts_fit(p, dtype);
}

bool tensor_core_dgrad_applies(const ConvParams& p, at::ScalarType dtype) {
  return has_async_copies() && groups_fill_tiles(p) && fits_int32(p) && relayouts_fit(p, dtype) && p.stride_h == 1 &&
         p.stride_w == 1 && (p.R - 1) * p.dil_h >= p.pad_h && (p.S - 1) * p.dil_w >= p.pad_w;
}

void tensor_core_fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                       const at::Tensor& bias, const at::Tensor& output, bool allow_tf32, cudaStream_t stream) {
  const int64_t c_per_group = padded(p.c_per_group(), input.scalar_type());
  const NhwcConvProblem problem{.N = p.N, .H = narrow(p.H), .W = narrow(p.W), .C = narrow(p.groups * c_per_group),
                                .P = narrow(p.P), .Q = narrow(p.Q), .K = narrow(p.K), .R = narrow(p.R),
                                .S = narrow(p.S), .stride_h = narrow(p.stride_h), .stride_w = narrow(p.stride_w),
                                .pad_h = narrow(p.pad_h), .pad_w = narrow(p.pad_w), .dil_h = narrow(p.dil_h),
                                .dil_w = narrow(p.dil_w), .groups = narrow(p.groups),
                                .c_per_group = narrow(c_per_group), .k_per_group = narrow(p.k_per_group()),
                                .shuffle_output = p.shuffle_output};
  // KRSC filters: the weight (K x C/g x R x S) in channels_last order, input channels padded.
  const at::Tensor filters = nhwc_operand(weight, 1, c_per_group);
  run_dispatched(problem, nhwc_operand(input, p.groups, c_per_group), filters, bias, output, allow_tf32, stream);
}

void tensor_core_dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                       const at::Tensor& bias, const at::Tensor& grad_input, bool allow_tf32, cudaStream_t stream) {
  // dx[h, w, g*Cg + c] = sum over (r', s', k) of dy[h - pad' + r'*dil, ..., g*Kg + k] * w'[g*Cg + c, r', s', k]
  // with w'[g*Cg + c, r', s', k] = w[g*Kg + k, c, R-1-r', S-1-s'] and pad' = (R-1)*dil - pad.
  const int64_t k_per_group = padded(p.k_per_group(), grad_output.scalar_type());
  const NhwcConvProblem problem{.N = p.N, .H = narrow(p.P), .W = narrow(p.Q), .C = narrow(p.groups * k_per_group),
                                .P = narrow(p.H), .Q = narrow(p.W), .K = narrow(p.C), .R = narrow(p.R),
                                .S = narrow(p.S), .stride_h = 1, .stride_w = 1,
                                .pad_h = narrow((p.R - 1) * p.dil_h - p.pad_h),
                                .pad_w = narrow((p.S - 1) * p.dil_w - p.pad_w), .dil_h = narrow(p.dil_h),
                                .dil_w = narrow(p.dil_w), .groups = narrow(p.groups),
                                .c_per_group = narrow(k_per_group), .k_per_group = narrow(p.c_per_group()),
                                .shuffle_output = false};
  // w' as an NCHW-sized (C x Kg x R x S) tensor, for nhwc_operand to lay out as C x R x S x Kg.
  const at::Tensor flipped = weight.reshape({p.groups, p.k_per_group(), p.c_per_group(), p.R, p.S})
                                 .flip({3, 4})
                                 .transpose(1, 2)
                                 .reshape({p.C, p.k_per_group(), p.R, p.S});
  run_dispatched(problem, nhwc_operand(grad_output, p.groups, k_per_group), nhwc_operand(flipped, 1, k_per_group),
                 bias, grad_input, allow_tf32, stream);
}

}  // namespace convkernels::cuda
