// The plane staging and the row kernel shared by the depthwise kernels.
//
// A depthwise kernel works on one (image, channel) plane at a time. fprop and wgrad stage the input
// plane in a small per-task buffer of acc_t, zero-padded in width and split into stride_w phases:
// padded column i lives at phase i % stride_w, position i / stride_w. Filter tap s of output column q
// reads padded column q * stride_w + s * dil_w, which is phase (s * dil_w) % stride_w, position
// q + (s * dil_w) / stride_w: every tap is a unit-stride run over q, at any stride, with no bounds
// checks (the padding is real zeros). Rows are padded only where a kernel stages zero rows around
// the plane itself (fprop's fast passes); otherwise a kernel skips the taps whose row falls outside
// the plane (tap_rows). FilterRow computes one output row from such unit-stride runs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <immintrin.h>

#include "../conv_params.h"
#include "index_math.h"
#include "simd_vec.h"

namespace convkernels::cpu::depthwise {

// Layout of one staged row: the padded width W + 2 * pad_w as stride_w phases of phase_len each.
struct PhasedRow {
  int64_t stride;     // stride_w
  int64_t pad;        // pad_w
  int64_t width;      // W, the unpadded width
  int64_t phase_len;  // ceil((W + 2 * pad_w) / stride_w)

  explicit PhasedRow(const ConvParams& p)
      : stride(p.stride_w),
        pad(p.pad_w),
        width(p.W),
        phase_len((p.W + 2 * p.pad_w + p.stride_w - 1) / p.stride_w) {}

  int64_t pitch() const { return stride * phase_len; }
  // Offset of padded column i.
  int64_t at(int64_t i) const { return (i % stride) * phase_len + i / stride; }
  // The positions t of phase j that hold real (unpadded) columns t * stride + j - pad.
  Range interior(int64_t j) const {
    const int64_t begin = pad > j ? (pad - j + stride - 1) / stride : 0;
    const int64_t end = std::min(phase_len, (width + pad - j + stride - 1) / stride);
    return {begin, std::max(begin, end)};
  }
};

// The first n <= lanes values at p as a vector, the other lanes zero; nothing past them is read.
template <typename T, int64_t Bytes>
typename Vec<T, Bytes>::type load_head(const T* p, int64_t n) {
  using V = typename Vec<T, Bytes>::type;
#if defined(__AVX512F__) && defined(__AVX512VL__)
  const uint32_t mask = (1u << n) - 1;  // n <= 16
  if constexpr (sizeof(T) == 4 && Bytes == 64) return V(_mm512_maskz_loadu_ps(mask, p));
  if constexpr (sizeof(T) == 4 && Bytes == 32) return V(_mm256_maskz_loadu_ps(mask, p));
  if constexpr (sizeof(T) == 8 && Bytes == 64) return V(_mm512_maskz_loadu_pd(mask, p));
  if constexpr (sizeof(T) == 8 && Bytes == 32) return V(_mm256_maskz_loadu_pd(mask, p));
#endif
  T lanes[Vec<T, Bytes>::lanes] = {};
  for (int64_t i = 0; i < n; ++i) lanes[i] = p[i];
  return Vec<T, Bytes>::load(lanes);
}

// Stores the first n <= lanes lanes of v at p: the last, partial vector of a row written straight
// into the output tensor, where a full store would run into the next row.
template <typename T, int64_t Bytes>
void store_head(T* p, typename Vec<T, Bytes>::type v, int64_t n) {
#if defined(__AVX512F__) && defined(__AVX512VL__)
  const uint32_t mask = (1u << n) - 1;  // n <= 16
  if constexpr (sizeof(T) == 4 && Bytes == 64) return _mm512_mask_storeu_ps(p, mask, __m512(v));
  if constexpr (sizeof(T) == 4 && Bytes == 32) return _mm256_mask_storeu_ps(p, mask, __m256(v));
  if constexpr (sizeof(T) == 8 && Bytes == 64) return _mm512_mask_storeu_pd(p, mask, __m512d(v));
  if constexpr (sizeof(T) == 8 && Bytes == 32) return _mm256_mask_storeu_pd(p, mask, __m256d(v));
#endif
  T lanes[Vec<T, Bytes>::lanes];
  Vec<T, Bytes>::store(lanes, v);
  for (int64_t i = 0; i < n; ++i) p[i] = lanes[i];
}

// Row copies for staging float and double planes, in wide vectors with a masked last one: the
// rows of small planes are a few vectors long, where a compiled loop spends most of its time in
// its scalar remainder. dst[t] = src[t] (Stride 1) or src[2 * t] (Stride 2, a deinterleave) for
// t < n; nothing past the last value used is read. Always inlined: left out of line, the call
// cost as much as the copy of a short row (stride-2 staging of 14-column planes 15% faster).
template <int64_t Stride, typename T>
__attribute__((always_inline)) inline void copy_strided(const T* src, int64_t n, T* dst) {
  using V = Vec<T, kWideVectorBytes>;
  constexpr int64_t L = V::lanes;
  const auto pick = [](typename V::type a, typename V::type b) {
    if constexpr (Stride == 1) {
      return a;
    } else {  // the even lanes of a, then those of b
      return [&]<size_t... I>(std::index_sequence<I...>) {
        return __builtin_shufflevector(a, b, (2 * I)...);
      }(std::make_index_sequence<L>());
    }
  };
  int64_t t = 0;
  for (; t * Stride + Stride * L - 1 <= (n - 1) * Stride; t += L) {  // whole vectors in reach
    const T* from = src + t * Stride;
    V::store(dst + t, pick(V::load(from), V::load(from + (Stride - 1) * L)));
  }
  if (t == n) return;
  const T* from = src + t * Stride;
  const int64_t reach = (n - t - 1) * Stride + 1;  // source values up to the last one used
  const typename V::type a = load_head<T, kWideVectorBytes>(from, std::min(reach, L));
  const typename V::type b = Stride == 1 || reach <= L
                                 ? V::splat(T(0))
                                 : load_head<T, kWideVectorBytes>(from + L, reach - L);
  store_head<T, kWideVectorBytes>(dst + t, pick(a, b), n - t);
}

// dst[i] = acc_t(src[i]) for i < n.
template <typename acc_t, typename scalar_t>
void load_row(const scalar_t* src, int64_t n, acc_t* dst) {
  if constexpr (std::is_same_v<acc_t, scalar_t>) return copy_strided<1>(src, n, dst);
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<acc_t>(src[i]);
}

// phase[t] = acc_t(src[t * stride]) for t in `in`. A compile-time Stride (nonzero) lets the
// compiler vectorize the copy (a deinterleave at stride 2).
template <int64_t Stride, typename acc_t, typename scalar_t>
void gather(const scalar_t* src, int64_t stride, Range in, acc_t* phase) {
  if constexpr ((Stride == 1 || Stride == 2) && std::is_same_v<acc_t, scalar_t>) {
    return copy_strided<Stride>(src + in.begin * Stride, in.end - in.begin, phase + in.begin);
  }
  const int64_t step = Stride ? Stride : stride;
  for (int64_t t = in.begin; t < in.end; ++t) phase[t] = static_cast<acc_t>(src[t * step]);
}

// dst (`rows` staged rows, layout `row`, pitch() apart) = src (rows x W values) zero-padded,
// converted to acc_t. A caller whose buffer keeps zeros in the margins (they are never written)
// passes zero_margins = false and only the interior is copied. Not inlined: inlined into wgrad's
// task loop, it left wgrad's inner sweep out of line (7x7 wgrad on 7x7 planes 17% slower).
template <typename acc_t, typename scalar_t>
__attribute__((noinline)) void stage_plane(const scalar_t* src, int64_t rows, const PhasedRow& row,
                                           acc_t* dst, bool zero_margins = true) {
  for (int64_t j = 0; j < row.stride; ++j) {
    const Range in = row.interior(j);
    for (int64_t h = 0; h < rows; ++h) {
      const scalar_t* from = src + h * row.width + j - row.pad;  // source column of position 0
      acc_t* phase = dst + h * row.pitch() + j * row.phase_len;
      if (zero_margins) std::fill(phase, phase + in.begin, acc_t(0));
      switch (row.stride) {
        case 1: gather<1>(from, 1, in, phase); break;
        case 2: gather<2>(from, 2, in, phase); break;
        default: gather<0>(from, row.stride, in, phase); break;
      }
      if (zero_margins) std::fill(phase + in.end, phase + row.phase_len, acc_t(0));
    }
  }
}

// One staged row.
template <typename acc_t, typename scalar_t>
void stage_row(const scalar_t* src, const PhasedRow& row, acc_t* dst) {
  stage_plane(src, 1, row, dst);
}

// The vector width for FilterRow on rows of `width` columns: the widest vector once a row fills
// three of them (fewer, wider loads per tap: a 31x31 filter on 56 columns runs 1.4x faster in
// zmm than in ymm); a narrower row would waste most of its lanes.
template <typename acc_t>
bool use_wide_rows(int64_t width) {
  return width >= 3 * Vec<acc_t, kWideVectorBytes>::lanes;
}

// The vector width for kernels that keep many rows' accumulators in registers (fprop's passes,
// dgrad's phase pairs), where short dependency chains no longer call for narrow vectors: the
// widest vector once a row fills most of one (measured: ConvNeXt's 7x7 on 14, 28 and 56 columns
// runs 8%, 37% and 35% faster in zmm than in ymm; at stride 2 dgrad on 28 columns 15%).
template <typename acc_t>
bool fills_wide_vector(int64_t width) {
  return 4 * width >= 3 * Vec<acc_t, kWideVectorBytes>::lanes;
}

// Splits a row of `vecs` vectors of L columns into register tiles of up to four vectors and calls
// tile.template operator()<U>(q0) for each, U vectors from column q0.
template <int64_t L, typename Tile>
void for_each_tile(int64_t vecs, Tile&& tile) {
  int64_t v = 0;
  for (; v + 4 <= vecs; v += 4) tile.template operator()<4>(v * L);
  switch (vecs - v) {  // the narrower last tile
    case 3: tile.template operator()<3>(v * L); break;
    case 2: tile.template operator()<2>(v * L); break;
    case 1: tile.template operator()<1>(v * L); break;
    default: break;
  }
}

// One output row of a depthwise convolution as a gather over filter taps:
//   out[q] = bias + sum over i < rows, s < taps of filter_rows[i][s] * in_rows[i][col_offset[s] + q]
// computed in register tiles of up to four vectors of q, each tap a broadcast weight times
// unit-stride loads, so the accumulators stay in registers across all the taps. dgrad's gather
// passes the filter rows and staged dy rows of every (k, r) pair that reaches the row, with the
// taps of one phase of output columns.
template <typename acc_t, int64_t VecBytes>
struct FilterRow {
  using V = Vec<acc_t, VecBytes>;
  int64_t rows, taps;
  const acc_t* const* filter_rows;
  const acc_t* const* in_rows;
  const int64_t* col_offset;
  acc_t bias;

  // out[0, vecs * lanes). The lanes past the caller's last column read at most a vector past it
  // (so in_rows need that much slack); their results are not used.
  void compute(int64_t vecs, acc_t* out) const {
    for_each_tile<V::lanes>(vecs, [&]<int64_t U>(int64_t q0) { tile<U>(q0, out); });
  }

  // out[q0, q0 + U * lanes)
  template <int64_t U>
  void tile(int64_t q0, acc_t* out) const {
    typename V::type acc[U];
    for (int64_t u = 0; u < U; ++u) acc[u] = V::splat(bias);
    for (int64_t i = 0; i < rows; ++i) {
      const acc_t* f = filter_rows[i];
      const acc_t* in = in_rows[i] + q0;
      for (int64_t s = 0; s < taps; ++s) {
        const acc_t* src = in + col_offset[s];
        for (int64_t u = 0; u < U; ++u) acc[u] += f[s] * V::load(src + u * V::lanes);
      }
    }
    for (int64_t u = 0; u < U; ++u) V::store(out + q0 + u * V::lanes, acc[u]);
  }
};

}  // namespace convkernels::cpu::depthwise
