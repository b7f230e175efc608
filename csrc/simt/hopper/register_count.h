// Moving registers between the warpgroups of a block, PTX's setmaxnreg (sm_90a), written once for
// nvcc and the emulator:
//   simt::release_registers<kCount>()   setmaxnreg.dec.sync.aligned.u32 kCount
//   simt::claim_registers<kCount>()     setmaxnreg.inc.sync.aligned.u32 kCount
// Every thread of a warpgroup calls it together; afterwards each of them holds kCount registers (24
// to 256, a multiple of 8). A warp-specialised kernel's producer warpgroup, which only issues
// copies, releases registers for its consumer warpgroups to claim: their accumulators can then
// outgrow the even share of a block's register file that the launch gives every thread. The
// emulator has no register file: there these do nothing but check kCount.
// Under nvcc setmaxnreg needs sm_90a; other targets compile it to a trap (hopper_asm.h).
#pragma once

#if defined(__CUDACC__)
#include "hopper_asm.h"
#else
#include "../simt.h"
#endif

namespace simt {

// setmaxnreg.dec (kClaim false: release_registers) or .inc (claim_registers) to kCount.
template <bool kClaim, int kCount>
__device__ __forceinline__ void set_register_count() {
  static_assert(kCount >= 24 && kCount <= 256 && kCount % 8 == 0, "setmaxnreg takes 24 to 256, a multiple of 8");
#if defined(__CUDACC__)
  if constexpr (kClaim) {
    SIMT_SM90A_ASM("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kCount));
  } else {
    SIMT_SM90A_ASM("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kCount));
  }
#endif
}

template <int kCount>
__device__ __forceinline__ void release_registers() {
  set_register_count<false, kCount>();
}

template <int kCount>
__device__ __forceinline__ void claim_registers() {
  set_register_count<true, kCount>();
}

}  // namespace simt
