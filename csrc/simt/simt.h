// The one include of a CUDA kernel source that also runs on the CPU. Under nvcc it only brings the
// CUDA headers and the portable spellings below; under any other compiler it brings the SIMT
// emulator, which runs the same kernels with each block's threads as fibers (or OS threads).
//
// Portable spellings:
//   simt::launch(kernel, grid, block, shared_bytes, stream, args...)   kernel<<<...>>>(args...)
//   SIMT_DYNAMIC_SHARED(T, name);                                       extern __shared__ T name[];
//   simt::max_grid()                                                    the largest grid of a launch
//   simt::device_runs_wgmma()                    the current GPU runs this build's sm_90a kernels
//   simt::multiprocessor_count()                 the current GPU's SMs, the grid of a persistent kernel
//   simt::ld_global(p), simt::st_global(p, v)                           *p, *p = v on global memory
//   simt::ld_shared(p), simt::st_shared(p, v)                           *p, *p = v on shared memory
//   simt::note_fma<acc_t>(n)                                            nothing: n FMAs were issued
//   const simt::LoopTrip trip(k);       nothing: the body of trip k of a loop in whose trips a
//                                       warp's lanes run a line different numbers of times
// The accessors, note_fma and LoopTrip are plain loads, stores and nothing under nvcc; in the
// emulator they also tell the counters (counters.h) what the kernel does, so use them for every
// load and store of a kernel's data, to note its FMAs, and to name the trips of such a loop (the
// counters group a warp's accesses into requests by trip).
//
// Rules for a kernel source that both compilers accept and the emulator runs faithfully:
//  - include "simt.h"; launch only through simt::launch; dynamic shared memory only through
//    SIMT_DYNAMIC_SHARED (a bare `extern __shared__` does not compile in the emulator);
//  - do not guard device code with __CUDA_ARCH__ (no host pass defines it); SIMT_EMULATOR is
//    defined in the emulator for the rare code that must differ;
//  - every thread of a block reaches every __syncthreads (no early return before a barrier); warp
//    collectives are the *_sync forms, their mask naming the lanes that take part;
//  - min/max take two arguments of one type; no thread_local state of your own (fibers share it).
//
// The emulator build needs the CUDA include directory on the include path (cuda_fp16.h and
// crt/host_defines.h), -std=c++17, and -Wno-unknown-pragmas alongside -Wall: g++ does not know
// `#pragma unroll`, and before GCC 13 no pragma in a header can silence that warning.
#pragma once

#if defined(__CUDACC__)

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

// One uniquely named byte array per use, so kernels of different element types can share a TU.
// 1024-byte aligned: the swizzle patterns that wgmma reads repeat every 1024 bytes of the
// shared-memory address (the emulator's dynamic shared memory is aligned alike).
#define SIMT_DYNAMIC_SHARED(T, name)                                         \
  extern __shared__ __align__(1024) unsigned char simt_dynamic_shared_##name[]; \
  T* const name = reinterpret_cast<T*>(simt_dynamic_shared_##name)

namespace simt {

template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared_bytes, cudaStream_t stream,
            Args&&... args) {
  kernel<<<grid, block, shared_bytes, stream>>>(std::forward<Args>(args)...);
}

// The largest grid a launch may have (x, y, z): CUDA's on every GPU since sm_30.
inline dim3 max_grid() { return dim3(2147483647u, 65535u, 65535u); }

// Whether the current GPU runs the kernels that issue wgmma: code for sm_90a runs on sm_90 GPUs
// (H100, H200) only, and only a build whose targets include it (SIMT_SM90A_BUILD, set by the
// build from its architecture list) has it; elsewhere those kernels are traps.
inline bool device_runs_wgmma() {
#if defined(SIMT_SM90A_BUILD)
  int device = 0, major = 0, minor = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    return false;
  }
  return major == 9 && minor == 0;
#else
  return false;
#endif
}

// The current GPU's number of SMs (cudaDevAttrMultiProcessorCount); 1 when it cannot be read.
inline unsigned multiprocessor_count() {
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    return 1;
  }
  return static_cast<unsigned>(count);
}

template <class T>
__device__ __forceinline__ T ld_global(const T* address) {
  return *address;
}
template <class T>
__device__ __forceinline__ void st_global(T* address, const std::common_type_t<T>& value) {
  *address = value;
}
template <class T>
__device__ __forceinline__ T ld_shared(const T* address) {
  return *address;
}
template <class T>
__device__ __forceinline__ void st_shared(T* address, const std::common_type_t<T>& value) {
  *address = value;
}
template <class acc_t>
__device__ __forceinline__ void note_fma(uint64_t) {}
struct LoopTrip {
  __device__ __forceinline__ explicit LoopTrip(int64_t) {}
};

}  // namespace simt

#else  // the emulator

#define SIMT_EMULATOR 1

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <vector_types.h>

#include "atomics.h"
#include "config.h"
#include "error.h"
#include "instrument.h"
#include "intrinsics.h"
#include "launch.h"
#include "memory_accessors.h"
#include "shared_memory.h"
#include "warp.h"

// Host compilers get no definition from the CUDA headers.
#define __launch_bounds__(...)

#endif
