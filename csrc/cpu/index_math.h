// Integer helpers shared by the CPU kernels.
#pragma once

#include <cstdint>

namespace convkernels::cpu {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }  // a >= 0, b > 0
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Half-open range [begin, end).
struct Range {
  int64_t begin, end;
};

}  // namespace convkernels::cpu
