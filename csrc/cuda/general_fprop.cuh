// General forward convolution (any groups, stride, padding, dilation, kernel shape) as an implicit
// GEMM per group g (implicit_gemm.cuh):
//
//   y[n, g*K/g + k, p, q] = sum over (c, r, s) of  w[g*K/g + k, c, r, s]
//                             * x[n, g*C/g + c, p*sh - ph + r*dh, q*sw - pw + s*dw]
//   GEMM  M = N*P*Q  (m = (n, p, q): output pixels),   N = K/g  (output channels),
//         K = C/g*R*S  (k = (c, r, s): the weight's own layout, so B rows are contiguous).
//
// A (the im2col view of x) is gathered with the threads along m, i.e. along q: coalesced. B is
// the weight matrix read along k. block_index = (m tile, n tile, group). For a 1x1 filter at stride
// 1 without padding (kPointwise) A is x itself: k = c and m's pixel is its input pixel.
#pragma once

#include "../conv_params.h"
#include "implicit_gemm.cuh"
#include "launch.cuh"

namespace convkernels::cuda {
namespace fprop_gemm {

// A[m, k] = x[n, c, h, w] with (n, p, q) = m, (c, r, s) = k, zero outside the image.
template <class Tile, bool kPointwise, typename T, typename acc_t>
struct ImageLoader {
  using Slice = ThreadsAlongX<Tile, Tile::kBlockM>;
  Slice slice;
  const T* image;  // x[n, g*C/g, 0, 0] of the thread's pixel (at the pixel itself if kPointwise)
  int c_per_group, h0, w0;  // the pixel's window origin (may lie in the padding)
  int64_t plane;            // H*W
  bool valid;               // m < M

  __device__ ImageLoader(const ConvParams& p, const T* x, int group, int64_t m0)
      : slice(threadIdx.x), c_per_group(static_cast<int>(p.c_per_group())), plane(p.H * p.W) {
    const int64_t m = m0 + slice.x;
    const int64_t pq = m % (p.P * p.Q);
    const int64_t n = m / (p.P * p.Q);
    valid = n < p.N;
    image = x + (n * p.C + group * p.c_per_group()) * plane;
    if constexpr (kPointwise) image += pq;
    h0 = static_cast<int>(pq / p.Q * p.stride_h - p.pad_h);
    w0 = static_cast<int>(pq % p.Q * p.stride_w - p.pad_w);
  }

  __device__ void load(const ConvParams& p, int64_t k0, acc_t (&regs)[Slice::kPerThread]) const {
    const int k = static_cast<int>(k0) + slice.k_first;
    if constexpr (kPointwise) {
#pragma unroll
      for (int e = 0; e < Slice::kPerThread; ++e) {
        const int c = k + e;
        regs[e] = valid && c < c_per_group ? acc_t(simt::ld_global(image + c * plane)) : acc_t(0);
      }
    } else {
      // Decompose the first k once, then step (c, r, s) along the thread's run.
      const int R = static_cast<int>(p.R), S = static_cast<int>(p.S);
      int c = k / (R * S), r = k % (R * S) / S, s = k % S;
#pragma unroll
      for (int e = 0; e < Slice::kPerThread; ++e) {
        const int h = h0 + r * static_cast<int>(p.dil_h);
        const int w = w0 + s * static_cast<int>(p.dil_w);
        const bool inside = valid && c < c_per_group && h >= 0 && h < p.H && w >= 0 && w < p.W;
        regs[e] = inside ? acc_t(simt::ld_global(image + c * plane + h * p.W + w)) : acc_t(0);
        if (++s == S) {
          s = 0;
          if (++r == R) {
            r = 0;
            ++c;
          }
        }
      }
    }
  }
};

// B[k, n] = w[g*K/g + n, k] (the filter of output channel n, flattened over (c, r, s)).
template <class Tile, typename T, typename acc_t>
struct FilterLoader {
  using Slice = ThreadsAlongK<Tile, Tile::kBlockN>;
  Slice slice;
  const T* filters[Slice::kPerThread];  // nullptr past the group's last channel
  int64_t filter_size;                  // C/g*R*S

  __device__ FilterLoader(const ConvParams& p, const T* w, int group, int n0)
      : slice(threadIdx.x), filter_size(p.c_per_group() * p.R * p.S) {
#pragma unroll
    for (int e = 0; e < Slice::kPerThread; ++e) {
      const int n = n0 + slice.x(e);
      filters[e] = n < p.k_per_group() ? w + (group * p.k_per_group() + n) * filter_size : nullptr;
    }
  }

  __device__ void load(const ConvParams&, int64_t k0, acc_t (&regs)[Slice::kPerThread]) const {
    const int64_t k = k0 + slice.k;
#pragma unroll
    for (int e = 0; e < Slice::kPerThread; ++e) {
      regs[e] = filters[e] != nullptr && k < filter_size ? acc_t(simt::ld_global(filters[e] + k)) : acc_t(0);
    }
  }
};

// Op: the type the GEMM multiplies in (T, or Tf32 for float32 in TF32; implicit_gemm.cuh).
template <typename T, typename Op, class Tile, bool kPointwise>
__global__ void general_fprop_kernel(Grid first, ConvParams p, const T* __restrict__ x,
                                     const T* __restrict__ w, const T* __restrict__ bias,
                                     T* __restrict__ y) {
  using acc_t = at::opmath_type<T>;
  const Grid block = block_index(first);
  const int group = static_cast<int>(block.z);
  const int64_t m0 = block.x * Tile::kBlockM;
  const int n0 = static_cast<int>(block.y * Tile::kBlockN);

  ImageLoader<Tile, kPointwise, T, acc_t> a(p, x, group, m0);
  FilterLoader<Tile, T, acc_t> b(p, w, group, n0);
  Accumulators<Tile, Op> acc(threadIdx.x);
  gemm_mainloop(p, a, b, 0, p.c_per_group() * p.R * p.S, acc);

  const int64_t PQ = p.P * p.Q;
#pragma unroll
  for (int i = 0; i < Tile::kThreadM; ++i) {
    const int64_t m = m0 + acc.m(i);
    const int64_t n = m / PQ;
    if (n >= p.N) continue;
    T* pixel = y + (n * p.K + p.output_channel(group, 0)) * PQ + m % PQ;
#pragma unroll
    for (int j = 0; j < Tile::kThreadN; ++j) {
      const int k = n0 + acc.n(j);
      if (k >= p.k_per_group()) continue;
      const acc_t b_k = bias != nullptr ? acc_t(simt::ld_global(bias + group * p.k_per_group() + k)) : acc_t(0);
      const T value = static_cast<T>(acc.c[i][j] + b_k);
      simt::st_global(pixel + k * p.output_channel_step() * PQ, value);
    }
  }
}

template <typename T, typename Op, class Tile, bool kPointwise>
void launch(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
            cudaStream_t stream) {
  const Grid grid{ceil_div<int64_t>(p.N * p.P * p.Q, Tile::kBlockM),
                  ceil_div<int64_t>(p.k_per_group(), Tile::kBlockN), p.groups};
  launch_grid(general_fprop_kernel<T, Op, Tile, kPointwise>, grid, dim3(Tile::kThreads), 0,
              stream, p, x, w, bias, y);
}

}  // namespace fprop_gemm

// y = conv2d(x, w) + bias; bias (K values) may be nullptr. allow_tf32: float32 may run in TF32.
template <typename T>
void general_fprop(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                   bool allow_tf32, cudaStream_t stream) {
  with_gemm_config<T>(p, p.k_per_group(), allow_tf32,
                      [&]<typename Op, class Tile, bool kPointwise>() {
                        fprop_gemm::launch<T, Op, Tile, kPointwise>(p, x, w, bias, y, stream);
                      });
}

}  // namespace convkernels::cuda
