// set_float32_precision: how the CUDA kernels multiply float32, beyond torch's
// torch.backends.cudnn.allow_tf32. "default" follows torch: TF32 on tensor cores where it allows
// it, IEEE float32 where not. "3xtf32" (opt-in) has the channels_last implicit GEMM split each
// float32 operand into a TF32 number and the TF32 rounding of its remainder and add three tensor-
// core products (big*big + big*small + small*big): float32-level error at tensor-core speed,
// whatever allow_tf32 says. The CPU kernels always compute in IEEE float32.
// Process-wide, as torch's flag is; each library (convkernels._C, convkernels._simt) keeps its own.
#pragma once

#include <atomic>
#include <string>

#include <c10/util/Exception.h>

namespace convkernels {

enum class Float32Precision { follow_torch, three_tf32 };

inline std::atomic<Float32Precision>& float32_precision_setting() {
  static std::atomic<Float32Precision> setting{Float32Precision::follow_torch};
  return setting;
}

inline Float32Precision float32_precision() { return float32_precision_setting().load(); }

// Sets the precision, "default" or "3xtf32", and returns the previous one.
inline std::string set_float32_precision(const std::string& precision) {
  TORCH_CHECK(precision == "default" || precision == "3xtf32",
              "float32 precision must be \"default\" or \"3xtf32\", but got \"", precision, "\"");
  const Float32Precision previous = float32_precision_setting().exchange(
      precision == "3xtf32" ? Float32Precision::three_tf32 : Float32Precision::follow_torch);
  return previous == Float32Precision::three_tf32 ? "3xtf32" : "default";
}

}  // namespace convkernels
