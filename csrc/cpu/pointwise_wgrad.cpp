// Pointwise (1x1, stride 1, no padding) convolution, weight gradient: per group,
// dw[g*Kg + k, c] = sum over images n and pixels hw of dy[n, g*Kg + k, hw] * x[n, g*Cg + c, hw].
//
// The micro-kernel of pointwise_tile.h with the pixels as its depth: the A panel is a chunk of dy
// transposed (pixels x MR output channels), the B panel the same chunk of x transposed (pixels x
// NR input channels). A task owns a block of rows of one group's dw and keeps its tiles in acc_t
// while it reduces over images and pixel chunks in a fixed order, so the result does not depend on
// the thread count.
#include <algorithm>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "cpu_kernels.h"
#include "pointwise_tile.h"

namespace convkernels::cpu {
namespace {

using pointwise::Tile;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename scalar_t>
void wgrad_groups(const ConvParams& p, const scalar_t* x, const scalar_t* dy, scalar_t* dw) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t MR = Tile<acc_t>::rows, NR = Tile<acc_t>::cols;
  // Every task packs x^T for its whole group, so tasks should be few and large: at most this many
  // row blocks each, and only as many tasks as keep the threads evenly busy.
  constexpr int64_t kMaxTaskRowBlocks = 16;
  // Keep the packed x^T chunk within about 128 KiB (L2) while the task's row blocks sweep it.
  constexpr int64_t kChunkBytes = 128 * 1024;
  const int64_t HW = p.H * p.W, G = p.groups, Kg = p.k_per_group(), Cg = p.c_per_group();
  const int64_t row_blocks = ceil_div(Kg, MR), strips = ceil_div(Cg, NR);
  const int64_t threads = at::get_num_threads();
  const int64_t wanted_tasks = ceil_div(
      ceil_div(G * ceil_div(row_blocks, kMaxTaskRowBlocks), threads) * threads, G);
  const int64_t task_row_blocks = ceil_div(row_blocks, std::min(row_blocks, wanted_tasks));
  const int64_t tasks_per_group = ceil_div(row_blocks, task_row_blocks);
  const int64_t chunk = std::clamp<int64_t>(kChunkBytes / (strips * NR * int64_t(sizeof(acc_t))),
                                            NR, 512);

  at::parallel_for(0, G * tasks_per_group, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> a_packed(task_row_blocks * chunk * MR);
    std::vector<acc_t> b_packed(strips * chunk * NR);
    std::vector<acc_t> grad(task_row_blocks * strips * MR * NR);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task / tasks_per_group;
      const int64_t rb0 = (task % tasks_per_group) * task_row_blocks;
      const int64_t rbs = std::min(task_row_blocks, row_blocks - rb0);
      std::fill(grad.begin(), grad.end(), acc_t(0));
      for (int64_t n = 0; n < p.N; ++n) {
        for (int64_t hw0 = 0; hw0 < HW; hw0 += chunk) {
          const int64_t depth = std::min(chunk, HW - hw0);
          const scalar_t* dy_g = dy + (n * p.K + g * Kg) * HW + hw0;
          const scalar_t* x_g = x + (n * p.C + g * Cg) * HW + hw0;
          for (int64_t rb = 0; rb < rbs; ++rb) {
            const int64_t k0 = (rb0 + rb) * MR;
            pointwise::pack_panel<MR>(dy_g + k0 * HW, std::min(MR, Kg - k0), depth, HW, 1,
                                      a_packed.data() + rb * depth * MR);
          }
          for (int64_t st = 0; st < strips; ++st) {
            pointwise::pack_panel<NR>(x_g + st * NR * HW, std::min(NR, Cg - st * NR), depth, HW, 1,
                                      b_packed.data() + st * depth * NR);
          }
          for (int64_t rb = 0; rb < rbs; ++rb) {
            for (int64_t st = 0; st < strips; ++st) {
              pointwise::tile_product(depth, a_packed.data() + rb * depth * MR,
                                      b_packed.data() + st * depth * NR,
                                      grad.data() + (rb * strips + st) * MR * NR);
            }
          }
        }
      }
      for (int64_t rb = 0; rb < rbs; ++rb) {
        const int64_t k0 = (rb0 + rb) * MR;
        for (int64_t st = 0; st < strips; ++st) {
          const acc_t* tile = grad.data() + (rb * strips + st) * MR * NR;
          scalar_t* dst = dw + (g * Kg + k0) * Cg + st * NR;
          for (int64_t i = 0; i < std::min(MR, Kg - k0); ++i) {
            for (int64_t j = 0; j < std::min(NR, Cg - st * NR); ++j) {
              dst[i * Cg + j] = static_cast<scalar_t>(tile[i * NR + j]);
            }
          }
        }
      }
    }
  });
}

}  // namespace

void pointwise_wgrad(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                     const at::Tensor& grad_weight) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "pointwise_wgrad",
                                  [&] {
                                    wgrad_groups<scalar_t>(p, input.const_data_ptr<scalar_t>(),
                                                           grad_output.const_data_ptr<scalar_t>(),
                                                           grad_weight.mutable_data_ptr<scalar_t>());
                                  });
}

}  // namespace convkernels::cpu
