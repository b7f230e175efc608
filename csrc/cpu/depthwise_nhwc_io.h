// The NHWC depthwise kernels compute in float or double only: half-type tensors are converted to
// their opmath type (float) on the way in, results computed into a float tensor and converted on
// the way out. Conversion keeps the memory format, so activations stay channels_last.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

namespace convkernels::cpu::nhwc {

inline bool is_half_type(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

// t, or t converted to float if it holds a half type (an undefined t stays undefined).
inline at::Tensor in_opmath(const at::Tensor& t) {
  return t.defined() && is_half_type(t) ? t.to(at::kFloat) : t;
}

// Where to compute `out`: out itself, or a float tensor of its shape and memory format.
inline at::Tensor out_opmath(const at::Tensor& out, at::MemoryFormat format) {
  if (!is_half_type(out)) return out;
  return at::empty(out.sizes(), out.options().dtype(at::kFloat).memory_format(format));
}

}  // namespace convkernels::cpu::nhwc
