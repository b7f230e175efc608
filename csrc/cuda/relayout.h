// write_in_format: computes an output in the memory format a kernel writes, then copies it into the
// caller's: the relayout at the boundary between NCHW callers and channels_last kernels (and back).
// An output already contiguous in that format (the same memory in both, or the kernel's own) is
// computed in place.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

namespace convkernels::cuda {

template <class Compute>
void write_in_format(const at::Tensor& output, at::MemoryFormat format, Compute&& compute) {
  if (output.is_contiguous(format)) return compute(output);
  const at::Tensor relaid = at::empty(output.sizes(), output.options().memory_format(format));
  compute(relaid);
  output.copy_(relaid);
}

}  // namespace convkernels::cuda
