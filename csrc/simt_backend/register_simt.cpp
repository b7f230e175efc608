// convkernels._simt: the CUDA kernels run on the CPU by the SIMT emulator, as the ops of the
// `convkernels_simt` library (the same schemas as `convkernels`) for CPU tensors. This is how the
// CUDA kernels are tested on machines without a GPU.
#include <Python.h>

#include <ATen/Context.h>
#include <torch/library.h>

#include "../conv_ops.h"
#include "../cuda/cuda_kernels.h"
#include "../op_schemas.h"
#include "../simt/config.h"
#include "../simt/counters.h"

namespace convkernels::simt_backend {
namespace {

// float32 in TF32 where torch.backends.cudnn.allow_tf32 allows it, as on a GPU of sm_80 or later,
// so that the tests run both paths; the tensor cores' twin (cuda/mma.cuh) does the arithmetic.
bool allows_tf32() { return at::globalContext().allowTF32CuDNN(at::Float32Op::CONV); }

// Launches are synchronous and take no stream under the emulator.
void fprop(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
           const at::Tensor& bias, const at::Tensor& output) {
  cuda::fprop(p, input, weight, bias, output, allows_tf32(), nullptr);
}

void dgrad(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
           const at::Tensor& bias, const at::Tensor& grad_input) {
  cuda::dgrad(p, grad_output, weight, bias, grad_input, allows_tf32(), nullptr);
}

void wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
           const at::Tensor& grad_weight) {
  cuda::wgrad(p, input, grad_output, grad_weight, allows_tf32(), nullptr);
}

void fprop_channels_last(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                         const at::Tensor& bias, const at::Tensor& output) {
  cuda::fprop_channels_last(p, input, weight, bias, output, allows_tf32(), nullptr);
}

void dgrad_channels_last(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                         const at::Tensor& bias, const at::Tensor& grad_input) {
  cuda::dgrad_channels_last(p, grad_output, weight, bias, grad_input, allows_tf32(), nullptr);
}

void wgrad_channels_last(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                         const at::Tensor& grad_weight) {
  cuda::wgrad_channels_last(p, input, grad_output, grad_weight, allows_tf32(), nullptr);
}

// Counter totals as they cross to Python: the kernel names, and for each in turn its
// KernelCounters::field_names() values.
std::tuple<std::vector<std::string>, std::vector<int64_t>> flatten(
    const std::map<std::string, simt::KernelCounters>& totals) {
  std::vector<std::string> names;
  std::vector<int64_t> values;
  for (const auto& [name, counters] : totals) {
    names.push_back(name);
    for (const uint64_t value : counters.values()) values.push_back(static_cast<int64_t>(value));
  }
  return {names, values};
}

}  // namespace

const KernelSet kernels{.fprop = fprop,
                        .dgrad = dgrad,
                        .wgrad = wgrad,
                        .fprop_channels_last = fprop_channels_last,
                        .dgrad_channels_last = dgrad_channels_last,
                        .wgrad_channels_last = wgrad_channels_last};

}  // namespace convkernels::simt_backend

TORCH_LIBRARY(convkernels_simt, m) {
  convkernels::define_conv_ops(m);
  // The order in which the threads of a block run ("forward", "reversed", "random[:SEED]"); returns
  // the previous one. A permuted order turns a missing __syncthreads into a wrong answer.
  m.def("set_schedule(str schedule) -> str", &simt::set_schedule);
  // The emulated GPU ("sm_80", "sm_90a"); returns the previous one. On sm_90a the channels_last
  // GEMMs of half types and TF32 take their wgmma kernels, as on an H100 or H200.
  m.def("set_arch(str arch) -> str", &simt::set_arch);
  // The largest grid (x, y, z) a launch may have; returns the previous one. Lowered, it makes the
  // kernels split small grids as they split, on a GPU, grids past CUDA's limits.
  m.def("set_max_grid(int[3] limits) -> int[]", [](c10::IntArrayRef limits) {
    TORCH_CHECK(limits.size() == 3 && limits[0] > 0 && limits[1] > 0 && limits[2] > 0 &&
                    limits[0] <= INT32_MAX && limits[1] <= 65535 && limits[2] <= 65535,
                "expected 3 grid limits within CUDA's (2^31 - 1, 65535, 65535), but got ", limits);
    const auto previous = simt::set_max_grid({static_cast<uint32_t>(limits[0]),
                                              static_cast<uint32_t>(limits[1]),
                                              static_cast<uint32_t>(limits[2])});
    return std::vector<int64_t>(previous.begin(), previous.end());
  });
  // Counter sessions (simt/counters.h): begin, read the totals per kernel name, end.
  m.def("counter_fields() -> str[]", [] {
    const auto names = simt::KernelCounters::field_names();
    return std::vector<std::string>(names.begin(), names.end());
  });
  m.def("begin_counting() -> ()", [] { simt::begin_counting(); });
  m.def("counter_totals() -> (str[], int[])",
        [] { return convkernels::simt_backend::flatten(simt::counter_totals()); });
  m.def("end_counting() -> ()", [] { simt::end_counting(); });
}

TORCH_LIBRARY_IMPL(convkernels_simt, CPU, m) {
  convkernels::register_kernel_ops<convkernels::simt_backend::kernels>(m);
}

extern "C" PyMODINIT_FUNC PyInit__simt(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_simt", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
