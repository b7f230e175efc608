// dispatch_math: runs fn.template operator()<T, Math>() with the element type of `dtype` and the
// math policy (nhwc_igemm/math_policies.cuh) every channels_last GEMM pass takes for it: half types
// on tensor cores; float32 there in TF32 where torch allows it (allow_tf32) or in 3xTF32 where
// set_float32_precision asks for it, else on CUDA cores with float64.
#pragma once

#include <ATen/Dispatch.h>

#include "../float32_precision.h"
#include "nhwc_igemm/math_policies.cuh"

namespace convkernels::cuda {

template <class Fn>
void dispatch_math(at::ScalarType dtype, bool allow_tf32, Fn&& fn) {
  using nhwc_igemm::CudaCoreMath, nhwc_igemm::TensorCoreMath, nhwc_igemm::ThreeTf32Math;
  AT_DISPATCH_SWITCH(dtype, "channels_last_gemm",
                     AT_DISPATCH_CASE(at::kHalf, [&] { fn.template operator()<scalar_t, TensorCoreMath>(); })
                     AT_DISPATCH_CASE(at::kBFloat16, [&] { fn.template operator()<scalar_t, TensorCoreMath>(); })
                     AT_DISPATCH_CASE(at::kFloat, [&] {
                       if (float32_precision() == Float32Precision::three_tf32) {
                         fn.template operator()<float, ThreeTf32Math>();
                       } else if (allow_tf32) {
                         fn.template operator()<float, TensorCoreMath>();
                       } else {
                         fn.template operator()<float, CudaCoreMath>();
                       }
                     })
                     AT_DISPATCH_CASE(at::kDouble, [&] { fn.template operator()<double, CudaCoreMath>(); }));
}

}  // namespace convkernels::cuda
