// Depthwise fprop over channels_last activations at stride and dilation 1, multiplier 1, for
// filters as wide as a good part of the map or wider (RepLKNet's 31x31 on 56x56 down to 13x13 on
// 7x7; ConvNeXt's 7x7 on 7x7):
//   y[n, oh, ow, c] = bias[c] + sum over the input pixels (ih, iw) in reach of (oh, ow) of
//                     w[c, ih - oh + ph, iw - ow + pw] * x[n, ih, iw, c]
// Many taps of such a filter fall in the padding, so the loops run over the input pixels in reach
// rather than over the taps. The gather (depthwise_nhwc_gather.h) loses twice here: it goes tap by
// tap, one load per FMA, and its pixels are C channels apart (2 KiB at C = 512), all in a few
// cache sets, so a map never stays in L1.
//
// Each task takes one vector of channels (L lanes) of one image, and packs the filter rows as
// vectors with kGuard zero taps on either side, and the input as an H x W array of vectors. An
// output row is computed in tiles of NT pixels: per input row in reach, a pass over the input
// columns in reach of the tile, in which input column iw (one load) meets, for tile pixel j, the
// tap iw - ow0 - j + pw. Step by step those taps slide by one, so they are kept in a ring of NT
// registers that takes one new tap per step: two loads per NT FMAs, the NT sums in registers all
// along. A tile pixel whose reach ends before the tile's (the tile's first and last columns) meets
// a guard zero there: exact for finite inputs only, so a block holding an Inf or NaN runs in tiles
// of one pixel, which never leave its reach.
#include <algorithm>
#include <utility>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "cpu_kernels.h"
#include "depthwise_nhwc_io.h"
#include "depthwise_plane.h"
#include "index_math.h"
#include "simd_vec.h"

namespace convkernels::cpu {
namespace {

// The widest tile: NT sums, NT ring taps and the input column in registers (29 of AVX-512's 32
// vector registers, 15 of AVX2's 16).
constexpr int64_t kMaxTile = kWideVectorBytes == 64 ? 14 : 7;
// Zero taps on either side of a filter row: a tile pixel reads up to NT - 1 taps past its reach.
constexpr int64_t kGuard = kMaxTile - 1;

template <typename T>
struct WideBlock {
  using V = Vec<T, kWideVectorBytes>;
  using vec = typename V::type;
  static constexpr int64_t L = V::lanes;
};

// acc[j] += sum over steps k < n of x[k] * w[k - j], j < NT (w[-NT + 1 .. n) readable).
template <typename vec, int NT>
inline void input_pass(vec (&acc)[NT], const vec* x, const vec* w, int64_t n) {
  // At step k, ring[(k - j) mod NT] holds w[k - j]: each step loads w[k] over the one it no
  // longer needs (w[k - NT]). Steps go in groups of NT, so that every ring index is a constant.
  vec ring[NT];
  [&]<int... J>(std::integer_sequence<int, J...>) {
    ((J > 0 ? void(ring[NT - J] = w[-J]) : void()), ...);
  }(std::make_integer_sequence<int, NT>{});
  const auto step = [&]<int U>(std::integral_constant<int, U>, int64_t k) {
    ring[U] = w[k];
    const vec xk = x[k];
    [&]<int... J>(std::integer_sequence<int, J...>) {
      ((acc[J] += xk * ring[(U - J + NT) % NT]), ...);
    }(std::make_integer_sequence<int, NT>{});
  };
  int64_t k = 0;
  for (; k + NT <= n; k += NT) {
    [&]<int... U>(std::integer_sequence<int, U...>) {
      (step(std::integral_constant<int, U>{}, k + U), ...);
    }(std::make_integer_sequence<int, NT>{});
  }
  const int64_t left = n - k;
  [&]<int... U>(std::integer_sequence<int, U...>) {
    ((U < left ? step(std::integral_constant<int, U>{}, k + U) : void()), ...);
  }(std::make_integer_sequence<int, NT>{});
}

// v[l] = src[l * stride] for l < lanes, zero in the other lanes.
template <typename T>
typename WideBlock<T>::vec gather_lanes(const T* src, int64_t stride, int64_t lanes) {
  using vec = typename WideBlock<T>::vec;
#ifdef __AVX512F__
  const int step = static_cast<int>(stride);
  const auto mask = static_cast<__mmask16>((1u << lanes) - 1);
  if constexpr (sizeof(T) == 4) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i index = _mm512_mullo_epi32(lane, _mm512_set1_epi32(step));
    return vec(_mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, index, src, 4));
  } else {
    const __m256i index =
        _mm256_mullo_epi32(_mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0), _mm256_set1_epi32(step));
    return vec(_mm512_mask_i32gather_pd(_mm512_setzero_pd(), static_cast<__mmask8>(mask), index,
                                        src, 8));
  }
#else
  vec v{};
  for (int64_t l = 0; l < lanes; ++l) v[l] = src[l * stride];
  return v;
#endif
}

template <typename T>
struct WideTask {
  using B = WideBlock<T>;
  using vec = typename B::vec;
  static constexpr int64_t L = B::L;

  const ConvParams& p;
  std::vector<vec> x, w;  // H x W input vectors; R rows of row_len filter taps
  int64_t row_len;

  explicit WideTask(const ConvParams& p)
      : p(p), x(p.H * p.W), w(p.R * (p.S + 2 * kGuard)), row_len(p.S + 2 * kGuard) {}

  // Packs filters [c0, c0 + lanes) (zero in the other lanes; the guards stay zero), each rotated
  // by 180 degrees where `rotate`.
  void pack_filters(const T* weight, bool rotate, int64_t c0, int64_t lanes) {
    const int64_t taps = p.R * p.S;
    const T* src = weight + c0 * taps;
    for (int64_t r = 0; r < p.R; ++r) {
      vec* row = w.data() + r * row_len + kGuard;
      for (int64_t s = 0; s < p.S; ++s) {
        const int64_t t = r * p.S + s;
        row[s] = gather_lanes<T>(src + (rotate ? taps - 1 - t : t), taps, lanes);
      }
    }
  }

  // Packs channels [c0, c0 + lanes) of image `image` (NHWC, C channels per pixel); whether they
  // are all finite.
  bool pack_input(const T* image, int64_t c0, int64_t lanes) {
    vec bad{};  // nonzero in a lane that met an Inf or NaN (x - x is NaN there, else 0)
    for (int64_t i = 0; i < p.H * p.W; ++i) {
      const T* src = image + i * p.C + c0;
      x[i] = lanes == L ? B::V::load(src) : depthwise::load_head<T, kWideVectorBytes>(src, lanes);
      bad += x[i] - x[i];
    }
    for (int64_t l = 0; l < L; ++l) {
      if (bad[l] != 0) return false;  // NaN compares unequal too
    }
    return true;
  }

  // Output row oh, pixels [ow0, ow0 + count) (count <= NT) into out (the row's first pixel,
  // channel c0). Flattened: input_pass and its folds must inline, or the sums and the ring go
  // through memory.
  template <int NT>
  [[gnu::flatten]] void tile(int64_t oh, int64_t ow0, int64_t count, vec b, T* out,
                             int64_t lanes) const {
    vec acc[NT];
    for (int j = 0; j < NT; ++j) acc[j] = b;
    const Range rows = tap_rows(oh, p.H, p.R, 1, p.pad_h, 1);
    const int64_t iw_begin = std::max<int64_t>(0, ow0 - p.pad_w);
    const int64_t iw_end = std::min(p.W, ow0 + count - 1 - p.pad_w + p.S);
    const int64_t s0 = iw_begin - ow0 + p.pad_w;  // the tap of pixel ow0 at column iw_begin
    for (int64_t r = rows.begin; r < rows.end && iw_begin < iw_end; ++r) {
      const int64_t ih = oh - p.pad_h + r;
      input_pass<vec, NT>(acc, x.data() + ih * p.W + iw_begin,
                          w.data() + r * row_len + kGuard + s0, iw_end - iw_begin);
    }
    for (int64_t j = 0; j < count; ++j) {
      T* dst = out + (ow0 + j) * p.K;
      if (lanes == L) {
        B::V::store(dst, acc[j]);
      } else {
        depthwise::store_head<T, kWideVectorBytes>(dst, acc[j], lanes);
      }
    }
  }

  // One image's output (NHWC) for the packed channels [c0, c0 + lanes), in tiles of NT pixels.
  template <int NT>
  void image(T* out, vec b, int64_t c0, int64_t lanes) const {
    for (int64_t oh = 0; oh < p.P; ++oh) {
      T* row = out + oh * p.Q * p.K + c0;
      for (int64_t ow0 = 0; ow0 < p.Q; ow0 += NT) {
        tile<NT>(oh, ow0, std::min<int64_t>(NT, p.Q - ow0), b, row, lanes);
      }
    }
  }
};

// The tile width for Q output columns: Q split in the fewest tiles of at most kMaxTile, evened out.
int64_t tile_width(int64_t Q) { return ceil_div(Q, ceil_div(Q, kMaxTile)); }

template <typename T, int... NT>
void run_image(WideTask<T>& task, int64_t nt, T* out, typename WideTask<T>::vec b, int64_t c0,
               int64_t lanes, std::integer_sequence<int, NT...>) {
  ((nt == NT + 1 ? task.template image<NT + 1>(out, b, c0, lanes) : void()), ...);
}

template <typename T>
void fprop_wide(const ConvParams& p, const at::Tensor& x, const at::Tensor& w, bool rotate,
                const at::Tensor& bias, const at::Tensor& y) {
  using B = WideBlock<T>;
  constexpr int64_t L = B::L;
  const int64_t blocks = ceil_div(p.C, L), nt = tile_width(p.Q);
  const T* x_data = x.const_data_ptr<T>();
  const T* w_data = w.const_data_ptr<T>();
  const T* b_data = bias.defined() ? bias.const_data_ptr<T>() : nullptr;
  T* y_data = y.mutable_data_ptr<T>();
  // A task per vector of channels and image, block-major: a thread packs a block's filters once
  // for the run of its images that it owns.
  at::parallel_for(0, blocks * p.N, 1, [&](int64_t begin, int64_t end) {
    WideTask<T> task(p);
    int64_t packed = -1;  // the block whose filters the task holds
    for (int64_t t = begin; t < end; ++t) {
      const int64_t block = t / p.N, n = t % p.N;
      const int64_t c0 = block * L, lanes = std::min(L, p.C - c0);
      if (block != packed) task.pack_filters(w_data, rotate, c0, lanes);
      packed = block;
      typename B::vec b{};
      if (b_data) b = depthwise::load_head<T, kWideVectorBytes>(b_data + c0, lanes);
      const bool finite = task.pack_input(x_data + n * p.H * p.W * p.C, c0, lanes);
      run_image(task, finite ? nt : 1, y_data + n * p.P * p.Q * p.K, b, c0, lanes,
                std::make_integer_sequence<int, kMaxTile>{});
    }
  });
}

}  // namespace

// Where this kernel beats the other routes (2-core AVX-512 CPU, float32, batch 2): filters of 13
// columns and more on any map (against the NCHW kernel and relayouts: 31x31 at 56x56 3.2 against
// 4.7 ms, 27x27 at 14x14 0.22 against 0.84), and of 5 or more where an output row is one tile
// (against the gather: 7x7 at 7x7 0.034 against 0.163 ms, 5x5 at 14x14 0.087 against 0.123).
// Not 3x3 (0.058 against 0.046 at 14x14), nor wider maps at 5x5 and 7x7 (7x7 at 56x56: 0.34
// against 0.25), where most steps of a tile meet guards.
bool depthwise_nhwc_wide_applies(const ConvParams& p) {
  const bool wide = p.S >= 13 || (p.S >= 5 && p.Q <= kMaxTile);
  return p.is_depthwise() && p.K == p.C && p.stride_h == 1 && p.stride_w == 1 && p.dil_h == 1 &&
         p.dil_w == 1 && wide;
}

void depthwise_fprop_nhwc_wide(const ConvParams& p, const at::Tensor& input,
                               const at::Tensor& weight, bool rotate, const at::Tensor& bias,
                               const at::Tensor& output) {
  using namespace nhwc;
  const at::Tensor x = in_opmath(input).contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor y = out_opmath(output, at::MemoryFormat::ChannelsLast);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "depthwise_fprop_nhwc_wide", [&] {
    fprop_wide<scalar_t>(p, x, in_opmath(weight).contiguous(), rotate, in_opmath(bias), y);
  });
  if (!y.is_same(output)) output.copy_(y);
}

}  // namespace convkernels::cpu
