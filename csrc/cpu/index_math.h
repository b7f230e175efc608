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

// The indices r < count whose input index origin + r * step lies in [0, in_size): the filter taps
// of an output position that land inside the image (step = dilation), or the output positions
// whose tap does (step = stride).
inline Range tap_range(int64_t origin, int64_t step, int64_t count, int64_t in_size) {
  // ceil(-origin / step), without the sum ceil_div forms: origin and step may be near 2^62.
  const int64_t begin = origin >= 0 ? 0 : (-origin - 1) / step + 1;
  const int64_t last = in_size - 1 - origin;  // the largest r * step that stays inside
  const int64_t end = last >= 0 ? std::min(count, last / step + 1) : 0;
  return {begin, std::max(begin, end)};
}

// The filter taps r < kernel of output index `out` whose input index out * stride - pad + r * dil
// lies in [0, in_size).
inline Range tap_rows(int64_t out, int64_t in_size, int64_t kernel, int64_t stride, int64_t pad,
                      int64_t dil) {
  return tap_range(out * stride - pad, dil, kernel, in_size);
}

}  // namespace convkernels::cpu
