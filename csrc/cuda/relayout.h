// write_in_format: computes an output in another memory format than the caller's, then copies it
// over: the relayout at the boundary between NCHW callers and channels_last kernels (and back).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

namespace convkernels::cuda {

template <class Compute>
void write_in_format(const at::Tensor& output, at::MemoryFormat format, Compute&& compute) {
  const at::Tensor relaid = at::empty(output.sizes(), output.options().memory_format(format));
  compute(relaid);
  output.copy_(relaid);
}

}  // namespace convkernels::cuda
