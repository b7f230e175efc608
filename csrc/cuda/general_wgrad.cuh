// General weight gradient as an implicit GEMM per group g (implicit_gemm.cuh), computed
// transposed so that the long filter dimension is GEMM M:
//
//   dw[g*K/g + k, c, r, s] = sum over (n, p, q) of  dy[n, g*K/g + k, p, q]
//                              * x[n, g*C/g + c, p*sh - ph + r*dh, q*sw - pw + s*dw]
//   GEMM  M = C/g*R*S  (m = (c, r, s)),   N = K/g  (k),   K = N*P*Q  (the reduction over pixels).
//
// Both operands are contiguous along the reduction (q), so both are gathered with the threads
// along k. M and N are small and K is huge, so K is split across blocks. Deterministic split-K:
// each split writes its partial sums to its own slice of a workspace and a second kernel adds the
// slices in split order; no atomics, and the split count depends only on the shape.
// block_index = (m tile, n tile + n tiles * split, group).
#pragma once

#include <algorithm>

#include <ATen/ops/empty.h>
#if !defined(SIMT_EMULATOR)
#include <c10/cuda/CUDAFunctions.h>
#endif

#include "../conv_params.h"
#include "implicit_gemm.cuh"
#include "launch.cuh"

namespace convkernels::cuda {
namespace wgrad_gemm {

// The reduction index k = (n, pq) of a thread's next tile. The loaders see consecutive tiles, so
// the cursor steps by kBlockK instead of dividing a 64-bit k on every step.
template <class Tile>
struct PixelCursor {
  int64_t n;
  int pq;

  __device__ PixelCursor(const ConvParams& p, int64_t k)
      : n(k / (p.P * p.Q)), pq(static_cast<int>(k % (p.P * p.Q))) {}
  __device__ void advance(const ConvParams& p) {
    pq += Tile::kBlockK;
    while (pq >= p.P * p.Q) {  // more than once only for images smaller than kBlockK pixels
      pq -= static_cast<int>(p.P * p.Q);
      ++n;
    }
  }
};

// A[m, k] = x[n, g*C/g + c, p*sh - ph + r*dh, q*sw - pw + s*dw] with (c, r, s) = m, (n, p, q) = k.
template <class Tile, bool kPointwise, typename T, typename acc_t>
struct ImageLoader {
  using Slice = ThreadsAlongK<Tile, Tile::kBlockM>;
  Slice slice;
  PixelCursor<Tile> pixel;
  const T* images;  // x[0, g*C/g, 0, 0]
  int64_t planes[Slice::kPerThread];  // c*H*W of the thread's columns, or -1 past the filter
  int dh[Slice::kPerThread], dw[Slice::kPerThread];  // r*dil_h - pad_h, s*dil_w - pad_w

  __device__ ImageLoader(const ConvParams& p, const T* x, int group, int64_t m0, int64_t k_begin)
      : slice(threadIdx.x), pixel(p, k_begin + slice.k),
        images(x + group * p.c_per_group() * p.H * p.W) {
    const int RS = static_cast<int>(p.R * p.S);
#pragma unroll
    for (int e = 0; e < Slice::kPerThread; ++e) {
      const int m = static_cast<int>(m0) + slice.x(e);
      planes[e] = m < p.c_per_group() * RS ? m / RS * p.H * p.W : -1;
      dh[e] = static_cast<int>(m % RS / p.S * p.dil_h - p.pad_h);
      dw[e] = static_cast<int>(m % p.S * p.dil_w - p.pad_w);
    }
  }

  __device__ void load(const ConvParams& p, int64_t, acc_t (&regs)[Slice::kPerThread]) {
    const int pq = pixel.pq;
    const T* image = images + pixel.n * p.C * p.H * p.W;
    const bool inside_k = pixel.n < p.N;
    pixel.advance(p);
    if constexpr (kPointwise) {
#pragma unroll
      for (int e = 0; e < Slice::kPerThread; ++e) {
        regs[e] = inside_k && planes[e] >= 0 ? acc_t(simt::ld_global(image + planes[e] + pq)) : acc_t(0);
      }
    } else {
      const int h0 = static_cast<int>(pq / p.Q * p.stride_h);
      const int w0 = static_cast<int>(pq % p.Q * p.stride_w);
#pragma unroll
      for (int e = 0; e < Slice::kPerThread; ++e) {
        const int h = h0 + dh[e], w = w0 + dw[e];
        const bool inside =
            inside_k && planes[e] >= 0 && h >= 0 && h < p.H && w >= 0 && w < p.W;
        regs[e] = inside ? acc_t(simt::ld_global(image + planes[e] + h * p.W + w)) : acc_t(0);
      }
    }
  }
};

// B[k, n] = dy[n', g*K/g + n, p, q] with (n', p, q) = k.
template <class Tile, typename T, typename acc_t>
struct GradOutputLoader {
  using Slice = ThreadsAlongK<Tile, Tile::kBlockN>;
  Slice slice;
  PixelCursor<Tile> pixel;
  const T* planes[Slice::kPerThread];  // dy[0, g*K/g + n, 0, 0], nullptr past the group

  __device__ GradOutputLoader(const ConvParams& p, const T* dy, int group, int n0, int64_t k_begin)
      : slice(threadIdx.x), pixel(p, k_begin + slice.k) {
#pragma unroll
    for (int e = 0; e < Slice::kPerThread; ++e) {
      const int n = n0 + slice.x(e);
      planes[e] =
          n < p.k_per_group() ? dy + (group * p.k_per_group() + n) * p.P * p.Q : nullptr;
    }
  }

  __device__ void load(const ConvParams& p, int64_t, acc_t (&regs)[Slice::kPerThread]) {
    const int64_t offset = pixel.n * p.K * p.P * p.Q + pixel.pq;
    const bool inside_k = pixel.n < p.N;
    pixel.advance(p);
#pragma unroll
    for (int e = 0; e < Slice::kPerThread; ++e) {
      regs[e] = inside_k && planes[e] != nullptr ? acc_t(simt::ld_global(planes[e] + offset)) : acc_t(0);
    }
  }
};

// Split `split` of the reduction covers [split * chunk, (split + 1) * chunk), chunk a multiple of
// kBlockK. With one split the block writes dw; otherwise its slice of `partials` (K x C/g*R*S
// values per split). Op: the type the GEMM multiplies in (T, or Tf32 for float32 in TF32;
// implicit_gemm.cuh).
template <typename T, typename Op, class Tile, bool kPointwise>
__global__ void general_wgrad_kernel(Grid first, ConvParams p, const T* __restrict__ x,
                                     const T* __restrict__ dy, T* __restrict__ dw,
                                     at::opmath_type<T>* __restrict__ partials, int64_t n_tiles,
                                     int64_t chunk) {
  using acc_t = at::opmath_type<T>;
  const Grid block = block_index(first);
  const int group = static_cast<int>(block.z);
  const int64_t m0 = block.x * Tile::kBlockM;
  const int n0 = static_cast<int>(block.y % n_tiles * Tile::kBlockN);
  const int64_t split = block.y / n_tiles;
  const int64_t reduction = p.N * p.P * p.Q;
  const int64_t k_begin = split * chunk;
  const int64_t k_end = k_begin + chunk < reduction ? k_begin + chunk : reduction;

  ImageLoader<Tile, kPointwise, T, acc_t> a(p, x, group, m0, k_begin);
  GradOutputLoader<Tile, T, acc_t> b(p, dy, group, n0, k_begin);
  Accumulators<Tile, Op> acc(threadIdx.x);
  gemm_mainloop(p, a, b, k_begin, k_end, acc);

  const int64_t filter_size = p.c_per_group() * p.R * p.S;
  const int64_t offset = group * p.k_per_group() * filter_size + m0;
#pragma unroll
  for (int j = 0; j < Tile::kThreadN; ++j) {
    const int k = n0 + acc.n(j);
    if (k >= p.k_per_group()) continue;
#pragma unroll
    for (int i = 0; i < Tile::kThreadM; ++i) {
      if (m0 + acc.m(i) >= filter_size) continue;
      const int64_t index = offset + k * filter_size + acc.m(i);
      if (partials != nullptr) {
        simt::st_global(partials + split * p.weight_numel() + index, acc.c[i][j]);
      } else {
        simt::st_global(dw + index, static_cast<T>(acc.c[i][j]));
      }
    }
  }
}

// dw[i] = sum over splits, in split order, of partials[split][i].
template <typename T>
__global__ void reduce_splits_kernel(const at::opmath_type<T>* __restrict__ partials, int splits,
                                     int64_t size, T* __restrict__ dw) {
  using acc_t = at::opmath_type<T>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < size;
       i += stride) {
    acc_t sum = 0;
    for (int split = 0; split < splits; ++split) sum += simt::ld_global(partials + split * size + i);
    simt::st_global(dw + i, static_cast<T>(sum));
  }
}

// Enough blocks to fill a large GPU a few times over, each reducing at least kMinSplitSteps tiles.
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kMinSplitSteps = 32;
constexpr int kReduceThreads = 256;

template <typename T, typename Op, class Tile, bool kPointwise>
void launch(const ConvParams& p, const T* x, const T* dy, T* dw, cudaStream_t stream) {
  using acc_t = at::opmath_type<T>;
  const int64_t m_tiles = ceil_div<int64_t>(p.c_per_group() * p.R * p.S, Tile::kBlockM);
  const int64_t n_tiles = ceil_div<int64_t>(p.k_per_group(), Tile::kBlockN);
  const int64_t steps = ceil_div<int64_t>(p.N * p.P * p.Q, Tile::kBlockK);
  const int64_t tiles = m_tiles * n_tiles * p.groups;
  const int64_t wanted = std::min(ceil_div(kTargetBlocks, tiles), steps / kMinSplitSteps);
  const int64_t chunk = ceil_div(steps, std::max<int64_t>(wanted, 1)) * Tile::kBlockK;
  const int64_t splits = ceil_div(p.N * p.P * p.Q, chunk);

  at::Tensor partials;  // owned by the caching allocator until the end of this function
  if (splits > 1) {
#if defined(SIMT_EMULATOR)
    const at::Device device(at::kCPU);
#else
    const at::Device device(at::kCUDA, c10::cuda::current_device());
#endif
    partials = at::empty({splits * p.weight_numel()},
                         at::TensorOptions()
                             .dtype(c10::CppTypeToScalarType<acc_t>::value)
                             .device(device));
  }
  acc_t* partials_data = splits > 1 ? partials.mutable_data_ptr<acc_t>() : nullptr;
  launch_grid(general_wgrad_kernel<T, Op, Tile, kPointwise>, Grid{m_tiles, n_tiles * splits, p.groups},
              dim3(Tile::kThreads), 0, stream, p, x, dy, dw, partials_data, n_tiles, chunk);
  if (splits > 1) {
    // Grid-stride: any number of blocks covers the sums.
    const int64_t blocks = std::min<int64_t>({ceil_div<int64_t>(p.weight_numel(), kReduceThreads),
                                              kTargetBlocks, simt::max_grid().x});
    launch_kernel(reduce_splits_kernel<T>, dim3(static_cast<unsigned>(blocks)),
                  dim3(kReduceThreads), 0, stream, partials_data, static_cast<int>(splits),
                  p.weight_numel(), dw);
  }
}

}  // namespace wgrad_gemm

// dw = the gradient of conv2d's weight for input x and grad_output dy (p.P x p.Q, which may be
// cropped). Deterministic: see the header comment. allow_tf32: float32 may run in TF32.
template <typename T>
void general_wgrad(const ConvParams& p, const T* x, const T* dy, T* dw, bool allow_tf32,
                   cudaStream_t stream) {
  with_gemm_config<T>(p, p.k_per_group(), allow_tf32,
                      [&]<typename Op, class Tile, bool kPointwise>() {
                        wgrad_gemm::launch<T, Op, Tile, kPointwise>(p, x, dy, dw, stream);
                      });
}

}  // namespace convkernels::cuda
