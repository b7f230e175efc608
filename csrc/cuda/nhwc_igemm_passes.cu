// The channels_last implicit GEMM passes fprop and dgrad (nhwc_igemm_passes.h) and the kernel's instantiations.
#include "nhwc_igemm_passes.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include <ATen/ops/empty.h>

#include "cuda_kernels.h"
#include "nhwc_igemm/conv_kernel.cuh"
#include "nhwc_igemm_math.h"
#include "nhwc_igemm_operands.h"
#include "stride_phase.h"

namespace convkernels::cuda {
namespace {

using nhwc_igemm::NhwcConvProblem;

// The kernel computes pixel coordinates and counts k-steps in 32-bit integers.
bool fits_int32(const ConvParams& p) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  const auto reach = [](int64_t out, int64_t stride, int64_t pad, int64_t taps, int64_t dil) {
    return (out - 1) * stride + pad + (taps - 1) * dil;
  };
  return std::max({p.H, p.W, p.C, p.K, p.P, p.Q, reach(p.P, p.stride_h, p.pad_h, p.R, p.dil_h),
                   reach(p.Q, p.stride_w, p.pad_w, p.S, p.dil_w), reach(p.H, 1, 0, p.R, p.dil_h),
                   reach(p.W, 1, 0, p.S, p.dil_w), p.R * p.S * p.C}) < kMax / 2;
}

// One GEMM of a pass: its problem and its KRSC filters (undefined where the problem has no filter
// tap: a stride phase of dgrad that no tap reaches, whose GEMM has no k-step and stores the bias,
// or zeros, without reading a filter).
struct Gemm {
  NhwcConvProblem problem;
  at::Tensor filters;
};

template <typename T, class Math>
void run(const std::vector<Gemm>& gemms, const at::Tensor& in, const at::Tensor& bias, const at::Tensor& output,
         cudaStream_t stream) {
  // The output is written in place when it is channels_last and 16-byte aligned (conv_ops
  // allocates it so), else through a temporary. The GEMMs write disjoint pixels of it.
  const bool in_place = output.is_contiguous(at::MemoryFormat::ChannelsLast) &&
                        reinterpret_cast<uintptr_t>(output.const_data_ptr()) % 16 == 0;
  const at::Tensor out =
      in_place ? output : at::empty(output.sizes(), output.options().memory_format(at::MemoryFormat::ChannelsLast));
  for (const Gemm& gemm : gemms) {
    if (gemm.problem.M() == 0) continue;
    const T* filters = gemm.filters.defined() ? gemm.filters.const_data_ptr<T>() : in.const_data_ptr<T>();
    nhwc_igemm::launch_channels_last_igemm<T, Math>(gemm.problem, in.const_data_ptr<T>(), filters,
                                                    optional_data<T>(bias), out.mutable_data_ptr<T>(), stream);
  }
  if (!in_place) output.copy_(out);
}

void run_dispatched(const std::vector<Gemm>& gemms, const at::Tensor& in, const at::Tensor& bias,
                    const at::Tensor& output, bool allow_tf32, cudaStream_t stream) {
  dispatch_math(in.scalar_type(), allow_tf32,
                [&]<typename T, class Math>() { run<T, Math>(gemms, in, bias, output, stream); });
}

// The phases along one dimension (of `out` pixels) that some tap reaches: phase
// (r * dil - pad) mod stride of each tap r < step (taps step apart share a phase), where < out.
std::vector<int64_t> phases_with_taps(int64_t out, int64_t stride, int64_t pad, int64_t taps, int64_t dil) {
  std::vector<int64_t> phases;
  for (int64_t r = 0; r < std::min(taps, stride / std::gcd(stride, dil)); ++r) {
    const int64_t phase = ((r * dil - pad) % stride + stride) % stride;
    if (phase < out) phases.push_back(phase);
  }
  return phases;
}

// Phases no tap reaches are launched one by one up to this many (each GEMM writes only its
// pixels); past it, one launch fills all of dx first.
constexpr int64_t kMaxPhasesWithoutTaps = 8;

// A packed group's outputs are columns of fprop's and dgrad's GEMMs: padded to whole n8 tiles.
constexpr int64_t kN8 = 8;

// How fprop and dgrad hold the groups of `channels` channels (the GEMM's k) and `outputs` outputs:
// half-type groups of 2 or 4 channels share 16-byte chunks (GroupPacking::sharing_chunks); others
// pack as GroupPacking does, but where a group's channels fit 8 bytes (a first layer's 3 half-type
// channels) and are not packed, padded to 8 bytes, not 16 (3 -> 4, not 8): the kernels copy such
// operands in 8-byte pieces, a filter tap each (conv_kernel.cuh), so a stage holds twice the taps.
GroupPacking pass_packing(int64_t groups, int64_t channels, int64_t outputs, at::ScalarType dtype) {
  constexpr int64_t kPieceBytes = 8;
  if (auto sharing = GroupPacking::sharing_chunks(groups, channels, outputs, dtype, kN8)) return *sharing;
  GroupPacking packing(groups, channels, outputs, dtype, kN8);
  const int64_t element = static_cast<int64_t>(c10::elementSize(dtype));
  if (packing.packed == 1 && channels * element <= kPieceBytes) packing.packed_c = kPieceBytes / element;
  return packing;
}

// Filter taps a stage holds (problem.cuh): as many as a stage's k (kRowBytes, the same in every
// tile) has room for where a group's channels divide it, unpacked (packed groups pick their
// chunks within a tap, packed_groups.cuh), and at most a filter row's S (a stage crosses one row
// boundary at most, filter_tap_cursor.cuh); 1 for a stride phase that no tap reaches (S = 0).
int taps_per_stage(const GroupPacking& packing, int64_t S, at::ScalarType dtype) {
  const int64_t stage = nhwc_igemm::SmallTile::kRowBytes / static_cast<int64_t>(c10::elementSize(dtype));
  const int64_t channels = packing.gemm_c();
  const bool several = packing.packed == 1 && channels < stage && stage % channels == 0;
  return several ? narrow(std::max<int64_t>(1, std::min(stage / channels, S))) : 1;
}

}  // namespace

bool nhwc_igemm_fprop_applies(const ConvParams& p, at::ScalarType dtype) {
  return nhwc_igemm_operands_fit(p, dtype) && fits_int32(p);
}

bool nhwc_igemm_dgrad_applies(const ConvParams& p, at::ScalarType dtype) {
  return nhwc_igemm_fprop_applies(p, dtype);
}

void nhwc_igemm_fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                       const at::Tensor& bias, const at::Tensor& output, bool allow_tf32, cudaStream_t stream) {
  const GroupPacking packing = pass_packing(p.groups, p.c_per_group(), p.k_per_group(), input.scalar_type());
  const NhwcConvProblem problem{.N = p.N, .H = narrow(p.H), .W = narrow(p.W), .C = narrow(p.groups * packing.packed_c),
                                .P = narrow(p.P), .Q = narrow(p.Q), .K = narrow(p.K), .R = narrow(p.R),
                                .S = narrow(p.S), .stride_h = narrow(p.stride_h), .stride_w = narrow(p.stride_w),
                                .pad_h = narrow(p.pad_h), .pad_w = narrow(p.pad_w), .dil_h = narrow(p.dil_h),
                                .dil_w = narrow(p.dil_w), .groups = narrow(p.groups / packing.packed),
                                .c_per_group = narrow(packing.gemm_c()), .k_per_group = narrow(packing.gemm_k()),
                                .shuffle_output = p.shuffle_output, .out_H = narrow(p.P), .out_W = narrow(p.Q),
                                .out_stride_h = 1, .out_stride_w = 1, .out_h0 = 0, .out_w0 = 0,
                                .packed = narrow(packing.packed), .packed_c = narrow(packing.packed_c),
                                .packed_k = narrow(packing.packed_k), .group_k = narrow(packing.group_k),
                                .taps_per_stage = taps_per_stage(packing, p.S, input.scalar_type())};
  // KRSC filters: the weight (K x C/g x R x S) in channels_last order, input channels padded.
  run_dispatched({{problem, packing.filters(weight, p.groups)}}, nhwc_operand(input, p.groups, packing.packed_c),
                 bias, output, allow_tf32, stream);
}

void nhwc_igemm_dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                       const at::Tensor& bias, const at::Tensor& grad_input, bool allow_tf32,
                       cudaStream_t stream) {
  // One GEMM per stride phase (a, b): dx[n, a + stride_h*h', b + stride_w*w', g*Cg + c] =
  //   sum over (j, i, k) of dy[n, h' - pad_h' + j*dil_h', w' - pad_w' + i*dil_w', g*Kg + k] * w'[g*Cg + c, j, i, k]
  // with w'[g*Cg + c, j, i, k] = w[g*Kg + k, c, rows.last - j*rows.step, cols.last - i*cols.step]
  // (StridePhase): only the taps that reach the phase, so no product is one with an inserted zero.
  const GroupPacking packing = pass_packing(p.groups, p.k_per_group(), p.c_per_group(), grad_output.scalar_type());
  const at::Tensor by_group = weight.reshape({p.groups, p.k_per_group(), p.c_per_group(), p.R, p.S});
  const auto problem_of = [&](int64_t a, int64_t b, const StridePhase& rows, const StridePhase& cols) {
    return NhwcConvProblem{
        .N = p.N, .H = narrow(p.P), .W = narrow(p.Q), .C = narrow(p.groups * packing.packed_c),
        .P = narrow(rows.outputs), .Q = narrow(cols.outputs), .K = narrow(p.C), .R = narrow(rows.count),
        .S = narrow(cols.count), .stride_h = 1, .stride_w = 1, .pad_h = narrow(rows.pad), .pad_w = narrow(cols.pad),
        .dil_h = narrow(rows.dil), .dil_w = narrow(cols.dil), .groups = narrow(p.groups / packing.packed),
        .c_per_group = narrow(packing.gemm_c()), .k_per_group = narrow(packing.gemm_k()), .shuffle_output = false,
        .out_H = narrow(p.H), .out_W = narrow(p.W), .out_stride_h = narrow(p.stride_h),
        .out_stride_w = narrow(p.stride_w), .out_h0 = narrow(a), .out_w0 = narrow(b),
        .packed = narrow(packing.packed), .packed_c = narrow(packing.packed_c),
        .packed_k = narrow(packing.packed_k), .group_k = narrow(packing.group_k),
        .taps_per_stage = taps_per_stage(packing, cols.count, grad_output.scalar_type())};
  };
  const auto phase_gemm = [&](int64_t a, int64_t b) {
    const StridePhase rows(a, p.H, p.stride_h, p.pad_h, p.R, p.dil_h);
    const StridePhase cols(b, p.W, p.stride_w, p.pad_w, p.S, p.dil_w);
    const NhwcConvProblem problem = problem_of(a, b, rows, cols);
    if (rows.count == 0 || cols.count == 0) return Gemm{problem, at::Tensor()};
    // w' as an NCHW-sized (C x Kg x count x count) tensor, for nhwc_operand to lay out as KRSC.
    const at::Tensor taps = by_group.slice(3, rows.first, rows.last + 1, rows.step)
                                .slice(4, cols.first, cols.last + 1, cols.step)
                                .flip({3, 4})
                                .transpose(1, 2)
                                .reshape({p.C, p.k_per_group(), rows.count, cols.count});
    return Gemm{problem, packing.filters(taps, p.groups)};
  };

  // The phases that hold pixels of dx: min(stride, H) x min(stride, W), of which at most R x S
  // (one per tap residue) are reached by a tap.
  const std::vector<int64_t> rows = phases_with_taps(p.H, p.stride_h, p.pad_h, p.R, p.dil_h);
  const std::vector<int64_t> cols = phases_with_taps(p.W, p.stride_w, p.pad_w, p.S, p.dil_w);
  const int64_t phases = std::min(p.stride_h, p.H) * std::min(p.stride_w, p.W);
  const int64_t without_taps = phases - static_cast<int64_t>(rows.size() * cols.size());
  std::vector<Gemm> gemms;
  if (without_taps > kMaxPhasesWithoutTaps) {
    // Many phases (a stride past the filter): one GEMM of no k-step stores the bias, or zeros,
    // over all of dx first, and the phases with taps overwrite their pixels.
    // (Its problem: stride 1, no tap, every pixel.)
    NhwcConvProblem fill = problem_of(0, 0, StridePhase(0, p.H, 1, 0, 0, 1), StridePhase(0, p.W, 1, 0, 0, 1));
    fill.out_stride_h = fill.out_stride_w = 1;
    gemms.push_back({fill, at::Tensor()});
  } else if (without_taps > 0) {
    // Each phase no tap reaches gets the bias, or zeros, from a GEMM of no k-step of its own.
    for (int64_t a = 0; a < std::min(p.stride_h, p.H); ++a) {
      for (int64_t b = 0; b < std::min(p.stride_w, p.W); ++b) {
        if (std::count(rows.begin(), rows.end(), a) == 0 || std::count(cols.begin(), cols.end(), b) == 0) {
          gemms.push_back(phase_gemm(a, b));
        }
      }
    }
  }
  for (const int64_t a : rows) {
    for (const int64_t b : cols) gemms.push_back(phase_gemm(a, b));
  }
  run_dispatched(gemms, nhwc_operand(grad_output, p.groups, packing.packed_c), bias, grad_input, allow_tf32,
                 stream);
}

}  // namespace convkernels::cuda
