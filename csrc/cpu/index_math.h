// Integer helpers shared by the CPU kernels.
#pragma once

#include <algorithm>
#include <cstdint>

namespace convkernels::cpu {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }  // a >= 0, b > 0
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Half-open range [begin, end).
struct Range {
  int64_t begin, end;
};

// The filter taps r < kernel whose input index out * stride - pad + r * dil lies in [0, in_size).
inline Range tap_rows(int64_t out, int64_t in_size, int64_t kernel, int64_t stride, int64_t pad,
                      int64_t dil) {
  const int64_t origin = out * stride - pad;
  const int64_t begin = origin >= 0 ? 0 : (-origin + dil - 1) / dil;
  const int64_t last_in = in_size - 1 - origin;  // the largest r * dil that stays inside
  const int64_t end = last_in >= 0 ? std::min(kernel, last_in / dil + 1) : 0;
  return {begin, std::max(begin, end)};
}

}  // namespace convkernels::cpu
