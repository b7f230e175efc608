// General CPU forward convolution: any groups, stride, padding, dilation and kernel shape.
//
// One task per (image, group, band of kBandRows output rows). It stages the input rows the band
// reads, of the group's channels, in a zero-padded, stride-phase-split buffer; then for each output
// row it lists the taps (c, r, s) whose input row is inside the image and reduces them into
// register tiles of output channels x output columns (direct_conv_tile.h). Rows too short to fill
// a tile share one tap list, as the segments of one row.
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "cpu_kernels.h"
#include "direct_conv_tile.h"

namespace convkernels::cpu {
namespace {

using namespace direct;

// Output rows per task: the input rows they share are staged once.
constexpr int64_t kBandRows = 4;

template <typename scalar_t>
void fprop_kernel(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                  const at::Tensor& bias, const at::Tensor& output) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t Cg = p.c_per_group(), Kg = p.k_per_group(), RS = p.R * p.S;
  const int64_t taps_per_k = Cg * RS;
  const scalar_t* x = input.const_data_ptr<scalar_t>();
  const scalar_t* w = weight.const_data_ptr<scalar_t>();
  const scalar_t* b = bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr;
  scalar_t* y = output.mutable_data_ptr<scalar_t>();

  const std::vector<acc_t> packed = pack_weights<acc_t>(w, p.groups, Kg, taps_per_k, Cg, RS, RS);

  const InputBand band(p, kLanes<acc_t>, kBandRows, Cg);
  const int64_t bands = ceil_div(p.P, band.rows());
  // Rows too short to fill a register tile are reduced several at a time, as one tile's segments.
  const int64_t rows_per_tile =
      round_up(p.Q, kLanes<acc_t>) < kRowVecs * kLanes<acc_t> ? band.rows() : 1;
  at::parallel_for(0, p.N * p.groups * bands, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> rows_buf(band.buffer_size());
    std::vector<Tap> taps(Cg * RS);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t p0 = task % bands * band.rows();
      const int64_t g = task / bands % p.groups;
      const int64_t n = task / (bands * p.groups);
      const int64_t n_out_rows = std::min(band.rows(), p.P - p0);
      band.stage(x, n, g * Cg, Cg, p0, n_out_rows, rows_buf.data());
      for (int64_t oh = p0; oh < p0 + n_out_rows; oh += rows_per_tile) {
        const int64_t rows = std::min(rows_per_tile, p0 + n_out_rows - oh);
        // Only the filter rows that land inside the image for some of the rows: the others would
        // multiply zeros.
        Range filter_rows{p.R, 0};
        for (int64_t i = oh; i < oh + rows; ++i) {
          const Range r = tap_range(i * p.stride_h - p.pad_h, p.dil_h, p.R, p.H);
          if (r.begin < r.end) filter_rows = {std::min(filter_rows.begin, r.begin),
                                              std::max(filter_rows.end, r.end)};
        }
        const int64_t n_taps = band.list_taps(oh - p0, filter_rows, taps.data());
        const OutputRow<scalar_t> out{y + ((n * p.K + p.output_channel(g, 0)) * p.P + oh) * p.Q,
                                      p.output_channel_step() * p.P * p.Q,
                                      1,
                                      p.Q,
                                      b ? b + g * Kg : nullptr,
                                      {rows, band.row_step(), p.Q}};
        reduce_row(rows_buf.data(), packed.data() + g * Kg * taps_per_k, taps_per_k, taps.data(),
                   n_taps, Kg, out);
      }
    }
  });
}

}  // namespace

void general_fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                   const at::Tensor& bias, const at::Tensor& output) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "general_fprop",
                                  [&] { fprop_kernel<scalar_t>(p, input, weight, bias, output); });
}

}  // namespace convkernels::cpu
