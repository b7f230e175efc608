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

// out[oh * lanes + q] for oh < P, q < lanes; `zeros` holds S zeros.
template <typename acc_t, int64_t VecBytes>
void whole_plane(const ConvParams& p, const PhasedRow& row, const acc_t* plane,
                 const acc_t* filter, const acc_t* zeros, const int64_t* col_offset, acc_t bias,
                 acc_t* out) {
  using V = Vec<acc_t, VecBytes>;
  typename V::type acc[kPlaneRows];
  for (int64_t oh = 0; oh < kPlaneRows; ++oh) acc[oh] = V::splat(bias);
  for (int64_t ih = 0; ih < p.H; ++ih) {
    const acc_t* f[kPlaneRows];  // the filter row that joins input row ih to output row oh
    for (int64_t oh = 0; oh < kPlaneRows; ++oh) {
      const int64_t shift = ih + p.pad_h - oh * p.stride_h;  // r * dil_h
      const bool hit = oh < p.P && shift >= 0 && shift % p.dil_h == 0 && shift / p.dil_h < p.R;
      f[oh] = hit ? filter + shift / p.dil_h * p.S : zeros;
    }
    const acc_t* in = plane + ih * row.pitch();
    for (int64_t s = 0; s < p.S; ++s) {
      const typename V::type v = V::load(in + col_offset[s]);
      for (int64_t oh = 0; oh < kPlaneRows; ++oh) acc[oh] += f[oh][s] * v;
    }
  }
  for (int64_t oh = 0; oh < p.P; ++oh) V::store(out + oh * V::lanes, acc[oh]);
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
  const PhasedRow row(p);
  std::vector<int64_t> col_offset(p.S);
  for (int64_t s = 0; s < p.S; ++s) col_offset[s] = row.at(s * p.dil_w);

  at::parallel_for(0, p.N * p.C, 1, [&](int64_t begin, int64_t end) {
    // L spare zeros at the end: the tiles' unused lanes may read past the last staged row.
    std::vector<acc_t> plane(p.H * row.pitch() + L, acc_t(0));
    std::vector<acc_t> filter(taps);
    std::vector<acc_t> out((whole ? p.P : vecs) * L);
    const std::vector<acc_t> zeros(p.S, acc_t(0));
    std::vector<const acc_t*> in_rows(p.R), filter_rows(p.R);
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / p.C, c = nc % p.C;
      for (int64_t h = 0; h < p.H; ++h) {
        stage_row(x + (nc * p.H + h) * p.W, row, plane.data() + h * row.pitch());
      }
      for (int64_t k = c * M; k < (c + 1) * M; ++k) {
        load_row(w + k * taps, taps, filter.data());
        const acc_t b = bias ? static_cast<acc_t>(bias[k]) : acc_t(0);
        scalar_t* y_plane = y + (n * p.K + p.output_channel(c, k - c * M)) * p.P * p.Q;
        if (whole) {
          whole_plane<acc_t, VecBytes>(p, row, plane.data(), filter.data(), zeros.data(),
                                       col_offset.data(), b, out.data());
          for (int64_t oh = 0; oh < p.P; ++oh) {
            for (int64_t q = 0; q < p.Q; ++q) {
              y_plane[oh * p.Q + q] = static_cast<scalar_t>(out[oh * L + q]);
            }
          }
          continue;
        }
        for (int64_t oh = 0; oh < p.P; ++oh) {
          const Range rows = tap_rows(oh, p.H, p.R, p.stride_h, p.pad_h, p.dil_h);
          for (int64_t r = rows.begin; r < rows.end; ++r) {
            const int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
            in_rows[r - rows.begin] = plane.data() + ih * row.pitch();
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
