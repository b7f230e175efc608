#include "conv_params.h"

#include <algorithm>
#include <limits>
#include <string>

#include <c10/util/Exception.h>
#include <c10/util/safe_numerics.h>

namespace convkernels {
namespace {

constexpr const char* kDims[2] = {"height", "width"};

// a + b and a * b of sizes, or a RuntimeError that names the size (the `what` parts) whose
// computation overflows int64.
template <typename... What>
int64_t checked_add(int64_t a, int64_t b, const What&... what) {
  int64_t sum;
  TORCH_CHECK(!c10::add_overflows(a, b, &sum), what..., " (", a, " + ", b, ") overflows int64");
  return sum;
}

template <typename... What>
int64_t checked_mul(int64_t a, int64_t b, const What&... what) {
  int64_t product;
  TORCH_CHECK(!c10::mul_overflows(a, b, &product), what..., " (", a, " * ", b,
              ") overflows int64");
  return product;
}

// Output extent of a forward convolution along dimension `dim`, or 0 where the dilated kernel is
// longer than the padded input (a span too long for int64 is longer than any input).
int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                         int64_t dilation, int dim) {
  // pad <= INT64_MAX / 2 (check_hyperparameters)
  const int64_t padded = checked_add(in, 2 * pad, "the padded input ", kDims[dim]);
  int64_t reach;  // span - 1
  if (c10::mul_overflows(dilation, kernel - 1, &reach) || reach >= padded) return 0;
  return (padded - 1 - reach) / stride + 1;
}

// Output extent of a transposed convolution along dimension `dim`.
int64_t conv_transpose_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                                   int64_t dilation, int64_t output_padding, int dim) {
  const char* what = "the output of conv_transpose2d along ";
  const int64_t strided = checked_mul(in - 1, stride, what, kDims[dim]);
  const int64_t reach = checked_mul(dilation, kernel - 1, what, kDims[dim]);
  const int64_t extent = checked_add(strided, reach, what, kDims[dim]);
  return checked_add(extent, output_padding + 1 - 2 * pad, what, kDims[dim]);
}

void check_pair(c10::IntArrayRef v, const char* name) {
  TORCH_CHECK(v.size() == 2, "expected ", name, " to have 2 values (height, width), but got ",
              name, "=", v);
}

void check_hyperparameters(c10::IntArrayRef stride, c10::IntArrayRef padding,
                           c10::IntArrayRef dilation, int64_t groups) {
  check_pair(stride, "stride");
  check_pair(padding, "padding");
  check_pair(dilation, "dilation");
  TORCH_CHECK(stride[0] > 0 && stride[1] > 0, "non-positive stride is not supported, got stride=",
              stride);
  TORCH_CHECK(padding[0] >= 0 && padding[1] >= 0,
              "negative padding is not supported, got padding=", padding);
  // torch's bound: twice the padding fits in int64.
  constexpr int64_t max_padding = std::numeric_limits<int64_t>::max() / 2;
  TORCH_CHECK(padding[0] <= max_padding && padding[1] <= max_padding, "given padding=", padding,
              ", expected padding to be at most ", max_padding);
  TORCH_CHECK(dilation[0] > 0 && dilation[1] > 0, "dilation should be greater than zero, but got dilation=",
              dilation);
  TORCH_CHECK(groups > 0, "non-positive groups is not supported, got groups=", groups);
}

bool is_supported_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// input and weight: 4-D, same dtype and device, bias (if any) the same; then a floating dtype.
void check_tensors(const at::Tensor& input, const char* input_name, const at::Tensor& weight,
                   const char* weight_name, const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(input.dim() == 4, "expected ", input_name, " to be 4-D (N, C, H, W), but got ",
              input_name, " of size ", input.sizes());
  // torch's sentence (its shape check), which its tests match on.
  TORCH_CHECK(weight.dim() == 4, "Expected ", weight.dim(), "-dimensional ", input_name, " for ", weight.dim(),
              "-dimensional ", weight_name, weight.sizes(), ", but got ", input.dim(), "-dimensional ", input_name,
              " of size ", input.sizes(), " instead");
  TORCH_CHECK(weight.size(2) > 0 && weight.size(3) > 0, "expected a kernel of at least 1 x 1, but got ",
              weight_name, " of size ", weight.sizes());
  TORCH_CHECK(input.scalar_type() == weight.scalar_type(), input_name, " type (",
              input.scalar_type(), ") and ", weight_name, " type (", weight.scalar_type(),
              ") should be the same");
  TORCH_CHECK(input.device() == weight.device(), input_name, " (on ", input.device(), ") and ",
              weight_name, " (on ", weight.device(), ") must be on the same device");
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->scalar_type() == input.scalar_type(), input_name, " type (",
                input.scalar_type(), ") and bias type (", bias->scalar_type(),
                ") should be the same");
    TORCH_CHECK(bias->device() == input.device(), input_name, " (on ", input.device(),
                ") and bias (on ", bias->device(), ") must be on the same device");
  }
  // After the operands' agreement, as torch, whose tests expect "should be the same" of an int64
  // input with a float64 bias.
  TORCH_CHECK(is_supported_dtype(input.scalar_type()), input_name,
              " must be float32, float64, float16 or bfloat16, but got ", input.scalar_type());
}

void check_bias(const std::optional<at::Tensor>& bias, int64_t channels,
                const at::Tensor& weight) {
  if (!bias.has_value() || !bias->defined()) return;
  TORCH_CHECK(bias->dim() == 1 && bias->size(0) == channels, "given weight of size ",
              weight.sizes(), ", expected bias to be 1-D with ", channels,
              " elements, but got bias of size ", bias->sizes());
}

// The channel and group arithmetic of the forward frame: x has C channels, w is K x C/g x R x S.
void check_groups(int64_t C, int64_t K, int64_t weight_c, int64_t groups,
                  const char* input_name, c10::IntArrayRef input_sizes,
                  c10::IntArrayRef weight_sizes) {
  TORCH_CHECK(K >= groups, "Given groups=", groups, ", expected weight to be at least ", groups,
              " at dimension 0, but got weight of size ", weight_sizes, " instead");
  TORCH_CHECK(C % groups == 0, "groups=", groups, " must divide the ", C, " channels of ",
              input_name, " of size ", input_sizes);
  TORCH_CHECK(K % groups == 0, "groups=", groups, " must divide the ", K,
              " output channels of weight of size ", weight_sizes);
  // torch's sentence, which its tests match on ("Given groups=1, weight"); the product is
  // printed only where it exists (groups and weight_size of conv2d_weight are the caller's).
  int64_t expected = 0;
  const bool overflows = __builtin_mul_overflow(weight_c, groups, &expected);
  TORCH_CHECK(C / groups == weight_c, "Given groups=", groups, ", weight of size ", weight_sizes,
              ", expected ", input_name, input_sizes, " to have ",
              overflows ? std::to_string(weight_c) + " * " + std::to_string(groups)
                        : std::to_string(expected),
              " channels, but got ", C, " channels instead");
}

// torch computes nothing over an empty image unless the batch or the channels are empty too.
void check_spatial_extent(c10::IntArrayRef input_sizes, const char* input_name) {
  TORCH_CHECK(input_sizes[0] == 0 || input_sizes[1] == 0 ||
                  (input_sizes[2] > 0 && input_sizes[3] > 0),
              "Only zero batch or zero channel inputs are supported, but got ", input_name,
              " of size ", input_sizes);
}

// A stride along a dimension with a single output position separates nothing: it becomes the
// smallest that still gives one position, so that stride * index stays within the padded input.
void reduce_lone_strides(ConvParams& p) {
  if (p.P == 1) p.stride_h = std::min(p.stride_h, p.H + 2 * p.pad_h - p.dil_h * (p.R - 1));
  if (p.Q == 1) p.stride_w = std::min(p.stride_w, p.W + 2 * p.pad_w - p.dil_w * (p.S - 1));
}

ConvParams forward_frame(int64_t N, int64_t C, int64_t H, int64_t W, c10::IntArrayRef weight_size,
                         c10::IntArrayRef stride, c10::IntArrayRef padding,
                         c10::IntArrayRef dilation, int64_t groups) {
  ConvParams p;
  p.N = N; p.C = C; p.H = H; p.W = W;
  p.K = weight_size[0]; p.R = weight_size[2]; p.S = weight_size[3];
  p.stride_h = stride[0]; p.stride_w = stride[1];
  p.pad_h = padding[0]; p.pad_w = padding[1];
  p.dil_h = dilation[0]; p.dil_w = dilation[1];
  p.groups = groups;
  p.P = conv_output_size(H, p.R, p.stride_h, p.pad_h, p.dil_h, 0);
  p.Q = conv_output_size(W, p.S, p.stride_w, p.pad_w, p.dil_w, 1);
  return p;
}

// The extent a dilated kernel spans, as text: it may be past int64 (then no input is that large).
std::string dilated_extent(int64_t kernel, int64_t dilation) {
  int64_t reach;
  if (c10::mul_overflows(dilation, kernel - 1, &reach) || reach == INT64_MAX) return "over 2^63";
  return std::to_string(reach + 1);
}

// torch's wording first (what its own tests and users' code match on), then what it leaves out.
void check_output_size(const ConvParams& p, const char* input_name, c10::IntArrayRef input_sizes) {
  TORCH_CHECK(p.P >= 1 && p.Q >= 1, "Calculated padded input size per channel: (",
              p.H + 2 * p.pad_h, " x ", p.W + 2 * p.pad_w, "). Kernel size: (",
              dilated_extent(p.R, p.dil_h), " x ", dilated_extent(p.S, p.dil_w),
              "). Kernel size can't be greater than actual input size (", input_name, " of size ",
              input_sizes, " padded by (", p.pad_h, ", ", p.pad_w, "), kernel ", p.R, " x ", p.S,
              " dilated by (", p.dil_h, ", ", p.dil_w, "))");
}

}  // namespace

ConvParams make_conv2d_params(const at::Tensor& input, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                              c10::IntArrayRef padding, c10::IntArrayRef dilation,
                              int64_t groups) {
  check_hyperparameters(stride, padding, dilation, groups);
  check_tensors(input, "input", weight, "weight", bias);
  check_groups(input.size(1), weight.size(0), weight.size(1), groups, "input", input.sizes(),
               weight.sizes());
  check_bias(bias, weight.size(0), weight);
  ConvParams p = forward_frame(input.size(0), input.size(1), input.size(2), input.size(3),
                               weight.sizes(), stride, padding, dilation, groups);
  check_output_size(p, "input", input.sizes());
  check_spatial_extent(input.sizes(), "input");
  reduce_lone_strides(p);
  return p;
}

ConvParams make_conv_transpose2d_params(const at::Tensor& input, const at::Tensor& weight,
                                        const std::optional<at::Tensor>& bias,
                                        c10::IntArrayRef stride, c10::IntArrayRef padding,
                                        c10::IntArrayRef output_padding, int64_t groups,
                                        c10::IntArrayRef dilation) {
  check_hyperparameters(stride, padding, dilation, groups);
  check_pair(output_padding, "output_padding");
  check_tensors(input, "input", weight, "weight", bias);
  for (int i = 0; i < 2; ++i) {
    TORCH_CHECK(output_padding[i] >= 0 &&
                    (output_padding[i] < stride[i] || output_padding[i] < dilation[i]),
                "output padding must be non-negative and smaller than either stride or "
                "dilation, but got output_padding=", output_padding, ", stride=", stride,
                ", dilation=", dilation);
  }
  TORCH_CHECK(weight.numel() > 0, "expected a non-empty weight, but got weight of size ",
              weight.sizes());
  // In the forward frame the transposed input is y (K channels) and the weight is K x C/g x R x S.
  const int64_t K = input.size(1);
  TORCH_CHECK(weight.size(0) == K, "Given transposed=1, weight of size ", weight.sizes(),
              ", expected input", input.sizes(), " to have ", weight.size(0),
              " channels, but got ", K, " channels instead");
  TORCH_CHECK(K >= groups && K % groups == 0, "groups=", groups, " must divide the ", K,
              " channels of input of size ", input.sizes());
  const int64_t C = checked_mul(weight.size(1), groups, "the output channels of conv_transpose2d");
  check_bias(bias, C, weight);
  check_spatial_extent(input.sizes(), "input");

  int64_t out[2];
  for (int i = 0; i < 2; ++i) {
    out[i] = conv_transpose_output_size(input.size(2 + i), weight.size(2 + i), stride[i],
                                        padding[i], dilation[i], output_padding[i], i);
  }
  TORCH_CHECK(out[0] >= 1 && out[1] >= 1, "Given input size per channel: (", input.size(2),
              " x ", input.size(3), "). Calculated output size per channel: (", out[0], " x ",
              out[1], "). Output size is too small (input of size ", input.sizes(),
              ": padding=", padding, " removes all that the transposed convolution produces)");
  ConvParams p = forward_frame(input.size(0), C, out[0], out[1], weight.sizes(), stride, padding,
                               dilation, groups);
  // The forward output size recomputed from H is the transposed input size, because
  // output_padding < stride (or < dilation, which only matters when stride is 1).
  p.P = input.size(2);
  p.Q = input.size(3);
  reduce_lone_strides(p);
  return p;
}

ConvParams make_conv2d_weight_params(const at::Tensor& input, const at::Tensor& grad_output,
                                     c10::IntArrayRef weight_size, c10::IntArrayRef stride,
                                     c10::IntArrayRef padding, c10::IntArrayRef dilation,
                                     int64_t groups) {
  check_hyperparameters(stride, padding, dilation, groups);
  check_tensors(input, "input", grad_output, "grad_output", std::nullopt);
  TORCH_CHECK(weight_size.size() == 4, "expected weight_size to have 4 values, but got ",
              weight_size);
  TORCH_CHECK(weight_size[0] > 0 && weight_size[1] > 0 && weight_size[2] > 0 && weight_size[3] > 0,
              "weight_size must be positive, but got ", weight_size);
  check_groups(input.size(1), weight_size[0], weight_size[1], groups, "input", input.sizes(),
               weight_size);
  ConvParams p = forward_frame(input.size(0), input.size(1), input.size(2), input.size(3),
                               weight_size, stride, padding, dilation, groups);
  check_output_size(p, "input", input.sizes());
  check_spatial_extent(input.sizes(), "input");
  // grad_output may stop short of the full forward output: a transposed convolution whose
  // output_padding is at least its stride produces rows that no input row maps to.
  TORCH_CHECK(grad_output.size(0) == p.N && grad_output.size(1) == p.K &&
                  grad_output.size(2) >= 1 && grad_output.size(2) <= p.P &&
                  grad_output.size(3) >= 1 && grad_output.size(3) <= p.Q,
              "expected grad_output of size [", p.N, ", ", p.K, ", ", p.P, ", ", p.Q,
              "] (or spatially cropped) for input of size ", input.sizes(), " and weight_size ",
              weight_size, ", but got ", grad_output.sizes());
  p.P = grad_output.size(2);
  p.Q = grad_output.size(3);
  reduce_lone_strides(p);
  return p;
}

}  // namespace convkernels
