// The channels_last depthwise passes: dtype dispatch, the widest channel vector the tensors allow
// (depthwise_nhwc/channel_vector.cuh), the kernel and the launches. At the full width the forward
// and the input gradient stage their tiles in shared memory (depthwise_nhwc/staged_kernel.cuh)
// wherever a sub-tile fits; the register-run kernels take the rest (single elements, huge
// dilations and strides).
#include "depthwise_nhwc.h"

#include <type_traits>

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>

#include "cuda_kernels.h"
#include "depthwise_nhwc/dgrad_kernel.cuh"
#include "depthwise_nhwc/fprop_kernel.cuh"
#include "depthwise_nhwc/staged_kernel.cuh"
#include "depthwise_nhwc/wgrad_kernel.cuh"

namespace convkernels::cuda {
namespace {

constexpr int kBlockThreads = 256;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

Grid blocks_for(int64_t threads) { return Grid{ceil_div(threads, kBlockThreads)}; }

// The K x 1 x R x S filter as [R*S][K]: a tap's channels adjacent, one vector load per tap.
at::Tensor taps_by_channel(const ConvParams& p, const at::Tensor& weight) {
  return weight.reshape({p.K, p.R * p.S}).t().contiguous();
}

// Launches the staged kernel for q where it applies (the full vector width, so multiplier 1, and a
// sub-tile that fits) and says whether it did. `filter` is the filter as [R*S][K].
template <typename T>
bool launched_staged(const depthwise_nhwc::StagedProblem& q, int width, const T* source, const T* filter,
                     const T* bias, T* y, cudaStream_t stream) {
  if (width == 1) return false;
  const auto tiling = depthwise_nhwc::StagedTiling::of(q, q.channels / width, sizeof(T) * width);
  if (!tiling.fits()) return false;
  launch_grid(depthwise_nhwc_staged_kernel<T>, Grid{tiling.blocks}, dim3(tiling.threads()), tiling.shared_bytes,
              stream, q, tiling, source, filter, bias, y);
  return true;
}

// Calls launch(std::integral_constant<int, kWidth>) for the channel vector width the tensors
// allow (channel_vector_width): the full one or 1.
template <typename T, class Launch>
void with_vector_width(int width, Launch launch) {
  if (width > 1) {
    launch(std::integral_constant<int, depthwise_nhwc::kFullWidth<T>>{});
  } else {
    launch(std::integral_constant<int, 1>{});
  }
}

}  // namespace

bool depthwise_nhwc_through_nchw(const ConvParams& p, at::ScalarType dtype) {
  if ((dtype != at::kFloat && dtype != at::kDouble) || p.R * p.S < 100) return false;
  const int64_t width = 16 / static_cast<int64_t>(c10::elementSize(dtype));
  return !depthwise_nhwc::StagedTiling::of(depthwise_nhwc::StagedProblem::forward(p), ceil_div(p.K, width), 16)
              .fits();
}

void depthwise_nhwc_fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                          const at::Tensor& bias, const at::Tensor& output, cudaStream_t stream) {
  const at::Tensor filter = taps_by_channel(p, weight);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "depthwise_nhwc_fprop", [&] {
    const scalar_t* x = input.const_data_ptr<scalar_t>();
    const scalar_t* w = filter.const_data_ptr<scalar_t>();
    const scalar_t* b = optional_data<scalar_t>(bias);
    scalar_t* y = output.mutable_data_ptr<scalar_t>();
    const int width = depthwise_nhwc::channel_vector_width<scalar_t>(p.K, p.K / p.C, {x, w, b, y});
    if (launched_staged(depthwise_nhwc::StagedProblem::forward(p), width, x, w, b, y, stream)) return;
    const int64_t tiles = p.N * ceil_div(p.P, depthwise_nhwc::kRows) * ceil_div(p.Q, depthwise_nhwc::kRun);
    with_vector_width<scalar_t>(width, [&](auto full) {
      constexpr int kWidth = decltype(full)::value;
      launch_grid(depthwise_nhwc_fprop_kernel<scalar_t, kWidth>, blocks_for(tiles * (p.K / kWidth)),
                  dim3(kBlockThreads), 0, stream, p, x, w, b, y);
    });
  });
}

void depthwise_nhwc_dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                          const at::Tensor& bias, const at::Tensor& grad_input, cudaStream_t stream) {
  const at::Tensor filter = taps_by_channel(p, weight);
  const at::ScalarType dtype = grad_output.scalar_type();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "depthwise_nhwc_dgrad", [&] {
    const scalar_t* dy = grad_output.const_data_ptr<scalar_t>();
    const scalar_t* w = filter.const_data_ptr<scalar_t>();
    const scalar_t* b = optional_data<scalar_t>(bias);
    scalar_t* dx = grad_input.mutable_data_ptr<scalar_t>();
    const int width = depthwise_nhwc::channel_vector_width<scalar_t>(p.C, p.K / p.C, {dy, w, b, dx});
    if (launched_staged(depthwise_nhwc::StagedProblem::input_gradient(p), width, dy, w, b, dx, stream)) return;
    // Tiles of every stride phase, each phase as many as phase 0, the longest.
    const int64_t tiles = p.N * p.stride_h * ceil_div(ceil_div(p.H, p.stride_h), depthwise_nhwc::kRows) *
                          p.stride_w * ceil_div(ceil_div(p.W, p.stride_w), depthwise_nhwc::kRun);
    with_vector_width<scalar_t>(width, [&](auto full) {
      constexpr int kWidth = decltype(full)::value;
      launch_grid(depthwise_nhwc_dgrad_kernel<scalar_t, kWidth>, blocks_for(tiles * (p.C / kWidth)),
                  dim3(kBlockThreads), 0, stream, p, dy, w, b, dx);
    });
  });
}

void depthwise_nhwc_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                          const at::Tensor& grad_weight, cudaStream_t stream) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "depthwise_nhwc_wgrad", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* x = input.const_data_ptr<scalar_t>();
    const scalar_t* dy = grad_output.const_data_ptr<scalar_t>();
    const int64_t taps = p.R * p.S;
    const auto acc_dtype = c10::CppTypeToScalarType<acc_t>::value;
    depthwise_nhwc::WgradTiling tiling{};
    depthwise_nhwc::PartialRow layout{};
    at::Tensor partial;
    with_vector_width<scalar_t>(
        depthwise_nhwc::channel_vector_width<scalar_t>(p.K, p.K / p.C, {x, dy}), [&](auto width) {
          constexpr int kWidth = decltype(width)::value;
          tiling = depthwise_nhwc::WgradTiling::of(p, kWidth, sizeof(scalar_t), sizeof(acc_t));
          layout = depthwise_nhwc::PartialRow::of<acc_t>(p.K, kWidth);
          partial = at::empty({tiling.splits, taps, p.K}, input.options().dtype(acc_dtype));
          launch_grid(depthwise_nhwc_wgrad_kernel<scalar_t, kWidth>, Grid{tiling.blocks},
                      dim3(tiling.threads()), tiling.shared_bytes, stream, p, tiling, x, dy,
                      partial.mutable_data_ptr<acc_t>());
        });
    depthwise_wgrad_reduce(tiling.splits, taps, layout, p.K, partial.const_data_ptr<acc_t>(),
                           grad_weight.mutable_data_ptr<scalar_t>(), stream);
  });
}

}  // namespace convkernels::cuda
