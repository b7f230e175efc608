// launch_kernel: every kernel launch of the CUDA backend goes through here, so that the same
// source launches on a GPU (nvcc: <<<...>>>, then torch's launch check) and on the CPU under the
// SIMT emulator (csrc/simt), which reports errors by throwing.
#pragma once

#include <cstddef>
#include <utility>

#include "../simt/simt.h"

#if !defined(SIMT_EMULATOR)
#include <c10/cuda/CUDAException.h>
#endif

namespace convkernels::cuda {

// Above this much dynamic shared memory a kernel must opt in (cudaFuncSetAttribute).
constexpr std::size_t kDefaultSharedMemoryLimit = 48 * 1024;

template <class... Params, class... Args>
void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared_bytes,
                   cudaStream_t stream, Args&&... args) {
#if !defined(SIMT_EMULATOR)
  if (shared_bytes > kDefaultSharedMemoryLimit) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(shared_bytes)));
  }
#endif
  simt::launch(kernel, grid, block, shared_bytes, stream, std::forward<Args>(args)...);
#if !defined(SIMT_EMULATOR)
  C10_CUDA_KERNEL_LAUNCH_CHECK();
#endif
}

}  // namespace convkernels::cuda
