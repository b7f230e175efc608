// Depthwise convolution, forward: y[n, k] = bias[k] + x[n, k / M] (*) w[k], M = K / C.
//
// One task per (image, input channel): it stages the input plane once (depthwise_plane.h) and
// computes the M output planes that read it. An output row is computed in register tiles of up to
// four vectors of columns (FilterRow, depthwise_plane.h): each tap is a broadcast weight times
// unit-stride loads from the staged plane.
#include <algorithm>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "cpu_kernels.h"
#include "depthwise_plane.h"

namespace convkernels::cpu {
namespace {

using namespace depthwise;

// Output planes of at most kPlaneRows rows of one vector each (the 7x7 maps of a late stage) are
// computed whole: all their rows stay in registers, and each load of a staged input row at tap s
// feeds every output row, with that row's filter row for the input row (a zero row where there is
// none). One load then serves kPlaneRows FMAs, where FilterRow would reload it for each output row
// and run one short dependent chain per row.
constexpr int64_t kPlaneRows = 8;

// The filter row that joins input row ih to output row oh < kPlaneRows of a whole plane, as the
// offset ih * kPlaneRows + oh -> r * S of its first tap, or R * S (a zero row) where there is none.
std::vector<int64_t> whole_plane_rows(const ConvParams& p) {
  std::vector<int64_t> rows(p.H * kPlaneRows);
  for (int64_t ih = 0; ih < p.H; ++ih) {
    for (int64_t oh = 0; oh < kPlaneRows; ++oh) {
      const int64_t shift = ih + p.pad_h - oh * p.stride_h;  // r * dil_h
      const bool hit = oh < p.P && shift >= 0 && shift % p.dil_h == 0 && shift / p.dil_h < p.R;
      rows[ih * kPlaneRows + oh] = (hit ? shift / p.dil_h : p.R) * p.S;
    }
  }
  return rows;
}

// out[oh * lanes + q] for oh < P, q < lanes; `filter` ends with a zero row, `rows` is
// whole_plane_rows(p).
template <typename acc_t, int64_t VecBytes>
void whole_plane(const ConvParams& p, const PhasedRow& row, const acc_t* plane,
                 const acc_t* filter, const int64_t* rows, const int64_t* col_offset, acc_t bias,
                 acc_t* out) {
  using V = Vec<acc_t, VecBytes>;
  typename V::type acc[kPlaneRows];
  for (int64_t oh = 0; oh < kPlaneRows; ++oh) acc[oh] = V::splat(bias);
  for (int64_t ih = 0; ih < p.H; ++ih) {
    const int64_t* f = rows + ih * kPlaneRows;
    const acc_t* in = plane + ih * row.pitch();
    for (int64_t s = 0; s < p.S; ++s) {
      const typename V::type v = V::load(in + col_offset[s]);
      for (int64_t oh = 0; oh < kPlaneRows; ++oh) acc[oh] += filter[f[oh] + s] * v;
    }
  }
  for (int64_t oh = 0; oh < p.P; ++oh) V::store(out + oh * V::lanes, acc[oh]);
}

// 3x3 filters at dilation 1 and equal stride 1 or 2 (the depthwise layers of MobileNets) compute
// kFastRows output rows per pass with compile-time taps: each vector loaded from an input row
// feeds every output row of the pass that reads it, so a pass loads (kFastRows - 1) * Stride + 3
// input rows instead of 3 * kFastRows. `in` is the staged plane with its top padding rows, so
// output row oh reads padded rows oh * Stride + r and no tap is skipped.
constexpr int64_t kFastRows = 4;

bool use_fast_3x3(const ConvParams& p) {
  return p.R == 3 && p.S == 3 && p.dil_h == 1 && p.dil_w == 1 && p.stride_h == p.stride_w &&
         (p.stride_h == 1 || p.stride_h == 2);
}

// out[j * out_pitch + q] for j < Rows output rows from padded input row `in`, q < vecs * lanes.
template <typename acc_t, int64_t VecBytes, int64_t Stride, int64_t Rows>
void fast_3x3_rows(const acc_t* in, int64_t pitch, const int64_t* col_offset, const acc_t* f,
                   acc_t bias, int64_t vecs, int64_t out_pitch, acc_t* out) {
  using V = Vec<acc_t, VecBytes>;
  for_each_tile<V::lanes>(vecs, [&]<int64_t U>(int64_t q0) {
    typename V::type acc[Rows][U];
    for (int64_t j = 0; j < Rows; ++j) {
      for (int64_t u = 0; u < U; ++u) acc[j][u] = V::splat(bias);
    }
    for (int64_t i = 0; i < (Rows - 1) * Stride + 3; ++i) {
      for (int64_t s = 0; s < 3; ++s) {
        const acc_t* src = in + i * pitch + col_offset[s] + q0;
        typename V::type v[U];
        for (int64_t u = 0; u < U; ++u) v[u] = V::load(src + u * V::lanes);
        for (int64_t j = 0; j < Rows; ++j) {
          const int64_t r = i - j * Stride;  // the filter row joining input row i to output row j
          if (r < 0 || r >= 3) continue;
          for (int64_t u = 0; u < U; ++u) acc[j][u] += f[r * 3 + s] * v[u];
        }
      }
    }
    for (int64_t j = 0; j < Rows; ++j) {
      for (int64_t u = 0; u < U; ++u) V::store(out + j * out_pitch + q0 + u * V::lanes, acc[j][u]);
    }
  });
}

// All P output rows of one filter over the padded plane: passes of kFastRows rows, then single
// rows.
template <typename acc_t, int64_t VecBytes, int64_t Stride>
void fast_3x3_plane(const ConvParams& p, const acc_t* plane, int64_t pitch,
                    const int64_t* col_offset, const acc_t* f, acc_t bias, int64_t vecs,
                    acc_t* out) {
  const int64_t out_pitch = vecs * Vec<acc_t, VecBytes>::lanes;
  int64_t oh = 0;
  for (; oh + kFastRows <= p.P; oh += kFastRows) {
    fast_3x3_rows<acc_t, VecBytes, Stride, kFastRows>(plane + oh * Stride * pitch, pitch,
                                                      col_offset, f, bias, vecs, out_pitch,
                                                      out + oh * out_pitch);
  }
  for (; oh < p.P; ++oh) {
    fast_3x3_rows<acc_t, VecBytes, Stride, 1>(plane + oh * Stride * pitch, pitch, col_offset, f,
                                              bias, vecs, out_pitch, out + oh * out_pitch);
  }
}

template <typename scalar_t, int64_t VecBytes>
void fprop_planes(const ConvParams& p, const scalar_t* x, const scalar_t* w, const scalar_t* bias,
                  scalar_t* y) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t L = Vec<acc_t, VecBytes>::lanes;
  const int64_t M = p.K / p.C;
  const int64_t taps = p.R * p.S;
  const int64_t vecs = (p.Q + L - 1) / L;  // vectors per output row, the last one partly used
  const bool whole = vecs == 1 && p.P <= kPlaneRows;
  const bool fast = !whole && use_fast_3x3(p);
  const PhasedRow row(p);
  // The fast path reads the pad_h zero rows above and below the plane; the others skip them.
  const int64_t top = fast ? p.pad_h : 0;
  std::vector<int64_t> col_offset(p.S);
  for (int64_t s = 0; s < p.S; ++s) col_offset[s] = row.at(s * p.dil_w);
  const std::vector<int64_t> plane_rows = whole ? whole_plane_rows(p) : std::vector<int64_t>();

  at::parallel_for(0, p.N * p.C, 1, [&](int64_t begin, int64_t end) {
    // L spare zeros at the end: the tiles' unused lanes may read past the last staged row.
    std::vector<acc_t> plane((p.H + 2 * top) * row.pitch() + L, acc_t(0));
    acc_t* const rows_begin = plane.data() + top * row.pitch();  // row 0 of the plane
    std::vector<acc_t> filter(taps + p.S, acc_t(0));  // and a zero row for whole_plane
    std::vector<acc_t> out((whole || fast ? p.P : 1) * vecs * L);
    std::vector<const acc_t*> in_rows(p.R), filter_rows(p.R);
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / p.C, c = nc % p.C;
      stage_plane(x + nc * p.H * p.W, p.H, row, rows_begin);
      for (int64_t k = c * M; k < (c + 1) * M; ++k) {
        load_row(w + k * taps, taps, filter.data());
        const acc_t b = bias ? static_cast<acc_t>(bias[k]) : acc_t(0);
        scalar_t* y_plane = y + (n * p.K + p.output_channel(c, k - c * M)) * p.P * p.Q;
        if (whole || fast) {
          if (whole) {
            whole_plane<acc_t, VecBytes>(p, row, plane.data(), filter.data(), plane_rows.data(),
                                         col_offset.data(), b, out.data());
          } else {
            (p.stride_h == 1 ? fast_3x3_plane<acc_t, VecBytes, 1>
                             : fast_3x3_plane<acc_t, VecBytes, 2>)(
                p, plane.data(), row.pitch(), col_offset.data(), filter.data(), b, vecs,
                out.data());
          }
          for (int64_t oh = 0; oh < p.P; ++oh) {
            for (int64_t q = 0; q < p.Q; ++q) {
              y_plane[oh * p.Q + q] = static_cast<scalar_t>(out[oh * vecs * L + q]);
            }
          }
          continue;
        }
        for (int64_t oh = 0; oh < p.P; ++oh) {
          const Range rows = tap_rows(oh, p.H, p.R, p.stride_h, p.pad_h, p.dil_h);
          for (int64_t r = rows.begin; r < rows.end; ++r) {
            const int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
            in_rows[r - rows.begin] = rows_begin + ih * row.pitch();
            filter_rows[r - rows.begin] = filter.data() + r * p.S;
          }
          const FilterRow<acc_t, VecBytes> filter_row{rows.end - rows.begin, p.S,
                                                      filter_rows.data(), in_rows.data(),
                                                      col_offset.data(), b};
          filter_row.compute(vecs, out.data());
          for (int64_t q = 0; q < p.Q; ++q) y_plane[oh * p.Q + q] = static_cast<scalar_t>(out[q]);
        }
      }
    }
  });
}

}  // namespace

void depthwise_fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& output) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "depthwise_fprop", [&] {
        const auto planes = use_wide_rows<at::opmath_type<scalar_t>>(p.Q)
                                ? fprop_planes<scalar_t, kWideVectorBytes>
                                : fprop_planes<scalar_t, 32>;
        planes(p, input.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
               bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
               output.mutable_data_ptr<scalar_t>());
      });
}

}  // namespace convkernels::cpu
