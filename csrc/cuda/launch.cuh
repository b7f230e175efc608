// launch_kernel: every kernel launch of the CUDA backend goes through here, so that the same
// source launches on a GPU (nvcc: <<<...>>>, then torch's launch check) and on the CPU under the
// SIMT emulator (csrc/simt), which reports errors by throwing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
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

// A grid of any size in int64 blocks, and the block of it that a thread's block is: launch_grid
// runs a grid larger than one launch allows (simt::max_grid) as several launches, each passing the
// kernel its first block, from which block_index finds the block's place in the whole grid.
struct Grid {
  int64_t x, y = 1, z = 1;
};

__device__ __forceinline__ Grid block_index(const Grid& first) {
  return {first.x + blockIdx.x, first.y + blockIdx.y, first.z + blockIdx.z};
}

template <class... Params, class... Args>
void launch_grid(void (*kernel)(Grid, Params...), Grid grid, dim3 block, std::size_t shared_bytes,
                 cudaStream_t stream, Args&&... args) {
  const dim3 max = simt::max_grid();
  for (int64_t z = 0; z < grid.z; z += max.z) {
    for (int64_t y = 0; y < grid.y; y += max.y) {
      for (int64_t x = 0; x < grid.x; x += max.x) {
        const dim3 chunk(static_cast<unsigned>(std::min<int64_t>(grid.x - x, max.x)),
                         static_cast<unsigned>(std::min<int64_t>(grid.y - y, max.y)),
                         static_cast<unsigned>(std::min<int64_t>(grid.z - z, max.z)));
        launch_kernel(kernel, chunk, block, shared_bytes, stream, Grid{x, y, z}, args...);
      }
    }
  }
}

}  // namespace convkernels::cuda
