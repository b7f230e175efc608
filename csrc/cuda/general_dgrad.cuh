// General data gradient (conv_transpose2d's forward) as an implicit GEMM per group g and stride
// phase (implicit_gemm.cuh), in gather form: every dx element is written once, nothing scattered.
//
//   dx[n, g*C/g + c, h, w] = sum over (k, r, s) of  dy[n, g*K/g + k, p, q] * w[g*K/g + k, c, r, s]
//                            where p = (h + ph - r*dh) / sh and q = (w + pw - s*dw) / sw are exact
//                            divisions inside dy.
//
// Which filter rows r divide exactly depends only on h mod sh, so the input pixels are split into
// sh*sw phases (h mod sh, w mod sw), each its own GEMM with only the taps that land:
//   GEMM  M = N * Hphase * Wphase  (m = (n, i, j): the pixel (h0 + i*sh, w0 + j*sw) of phase (h0, w0)),
//         N = C/g,   K = K/g * taps_h * taps_w  (k = (k, tap_r, tap_s)).
// The taps of a phase are an arithmetic progression r = r0 + t * sh/gcd(sh, dh), along which the dy
// row moves by dh/gcd(sh, dh) (PhaseAxis). block_index = (phase * m tiles + m tile, n tile, group).
// With stride 1 there is one phase and every tap lands; kPointwise drops the index math entirely.
#pragma once

#include "../conv_params.h"
#include "implicit_gemm.cuh"
#include "launch.cuh"

namespace convkernels::cuda {
namespace dgrad_gemm {

// One axis of a stride phase: the input positions phase + i*stride (i < extent) and the filter
// taps that reach them, r = tap0 + t*tap_step (t < taps), whose dy position is
// i + dy0 - t*dy_step.
struct PhaseAxis {
  int extent, taps, tap0, tap_step, dy0, dy_step;

  C10_HOST_DEVICE PhaseAxis(int64_t size, int64_t filter, int64_t stride, int64_t pad,
                            int64_t dilation, int64_t phase) {
    extent = phase < size ? static_cast<int>(ceil_div(size - phase, stride)) : 0;
    int64_t gcd = stride, b = dilation;
    while (b != 0) {
      const int64_t t = gcd % b;
      gcd = b;
      b = t;
    }
    tap_step = static_cast<int>(stride / gcd);
    dy_step = static_cast<int>(dilation / gcd);
    // r lands iff r*dilation = phase + pad (mod stride); the solutions repeat every tap_step.
    tap0 = 0;
    while (tap0 < tap_step && tap0 < filter && (phase + pad - tap0 * dilation) % stride != 0) ++tap0;
    const bool lands = tap0 < tap_step && tap0 < filter;
    taps = lands ? static_cast<int>(ceil_div(filter - tap0, int64_t{tap_step})) : 0;
    dy0 = static_cast<int>((phase + pad - tap0 * dilation) / stride);
  }
};

// The phases that hold pixels along a dimension: no more than its size, however large the stride.
C10_HOST_DEVICE inline int64_t phase_count(int64_t stride, int64_t size) {
  return stride < size ? stride : size;
}

// The phase of this block and its two axes; phase `index` is (index / phases_w, index % phases_w).
struct Phase {
  PhaseAxis h, w;
  int64_t pixels;  // per image

  C10_HOST_DEVICE Phase(const ConvParams& p, int64_t index)
      : h(p.H, p.R, p.stride_h, p.pad_h, p.dil_h, index / phase_count(p.stride_w, p.W)),
        w(p.W, p.S, p.stride_w, p.pad_w, p.dil_w, index % phase_count(p.stride_w, p.W)),
        pixels(int64_t{h.extent} * w.extent) {}
  C10_HOST_DEVICE int taps() const { return h.taps * w.taps; }
};

// A[m, k] = dy[n, g*K/g + k, p, q] for the m-th pixel of the phase and the k-th (channel, tap).
template <class Tile, bool kPointwise, typename T, typename acc_t>
struct GradOutputLoader {
  using Slice = ThreadsAlongX<Tile, Tile::kBlockM>;
  Slice slice;
  const Phase& phase;
  const T* image;  // dy[n, g*K/g, 0, 0] (at the pixel itself if kPointwise)
  int k_per_group, p0, q0;  // dy position of the pixel's first tap
  int64_t plane;            // P*Q
  bool valid;               // m < M

  __device__ GradOutputLoader(const ConvParams& p, const Phase& phase_, const T* dy, int group,
                              int64_t m0)
      : slice(threadIdx.x), phase(phase_), k_per_group(static_cast<int>(p.k_per_group())),
        plane(p.P * p.Q) {
    const int64_t m = m0 + slice.x;
    const int64_t ij = m % phase.pixels;
    const int64_t n = m / phase.pixels;
    valid = n < p.N;
    image = dy + (n * p.K + group * p.k_per_group()) * plane;
    if constexpr (kPointwise) image += ij;
    p0 = static_cast<int>(ij / phase.w.extent) + phase.h.dy0;
    q0 = static_cast<int>(ij % phase.w.extent) + phase.w.dy0;
  }

  __device__ void load(const ConvParams& p, int64_t k0, acc_t (&regs)[Slice::kPerThread]) const {
    const int k = static_cast<int>(k0) + slice.k_first;
    if constexpr (kPointwise) {
#pragma unroll
      for (int e = 0; e < Slice::kPerThread; ++e) {
        const int channel = k + e;
        regs[e] = valid && channel < k_per_group ? acc_t(simt::ld_global(image + channel * plane)) : acc_t(0);
      }
    } else {
      // Decompose the first k once, then step (channel, tap_r, tap_s) along the thread's run.
      const int taps_h = phase.h.taps, taps_w = phase.w.taps;
      int channel = k / (taps_h * taps_w), t_h = k % (taps_h * taps_w) / taps_w, t_w = k % taps_w;
#pragma unroll
      for (int e = 0; e < Slice::kPerThread; ++e) {
        const int py = p0 - t_h * phase.h.dy_step;
        const int qx = q0 - t_w * phase.w.dy_step;
        const bool inside =
            valid && channel < k_per_group && py >= 0 && py < p.P && qx >= 0 && qx < p.Q;
        regs[e] = inside ? acc_t(simt::ld_global(image + channel * plane + py * p.Q + qx)) : acc_t(0);
        if (++t_w == taps_w) {
          t_w = 0;
          if (++t_h == taps_h) {
            t_h = 0;
            ++channel;
          }
        }
      }
    }
  }
};

// B[k, n] = w[g*K/g + k, n, r, s] for the k-th (channel, tap) of the phase and input channel n.
template <class Tile, typename T, typename acc_t>
struct FilterLoader {
  using Slice = ThreadsAlongK<Tile, Tile::kBlockN>;
  Slice slice;
  const Phase& phase;
  const T* filters;                 // w[g*K/g, 0, 0, 0]
  int64_t columns[Slice::kPerThread];  // n*R*S, or -1 past the group's last channel

  __device__ FilterLoader(const ConvParams& p, const Phase& phase_, const T* w, int group, int n0)
      : slice(threadIdx.x), phase(phase_),
        filters(w + group * p.k_per_group() * p.c_per_group() * p.R * p.S) {
#pragma unroll
    for (int e = 0; e < Slice::kPerThread; ++e) {
      const int n = n0 + slice.x(e);
      columns[e] = n < p.c_per_group() ? n * p.R * p.S : -1;
    }
  }

  __device__ void load(const ConvParams& p, int64_t k0, acc_t (&regs)[Slice::kPerThread]) const {
    const int k = static_cast<int>(k0) + slice.k;
    const int taps = phase.taps();
    const int channel = k / taps;
    const int r = phase.h.tap0 + k % taps / phase.w.taps * phase.h.tap_step;
    const int s = phase.w.tap0 + k % phase.w.taps * phase.w.tap_step;
    const T* tap = filters + channel * p.c_per_group() * p.R * p.S + r * p.S + s;
    const bool inside = channel < p.k_per_group();
#pragma unroll
    for (int e = 0; e < Slice::kPerThread; ++e) {
      regs[e] = inside && columns[e] >= 0 ? acc_t(simt::ld_global(tap + columns[e])) : acc_t(0);
    }
  }
};

// Op: the type the GEMM multiplies in (T, or Tf32 for float32 in TF32; implicit_gemm.cuh).
template <typename T, typename Op, class Tile, bool kPointwise>
__global__ void general_dgrad_kernel(Grid first, ConvParams p, const T* __restrict__ dy,
                                     const T* __restrict__ w, const T* __restrict__ bias,
                                     T* __restrict__ dx, int64_t m_tiles) {
  using acc_t = at::opmath_type<T>;
  const Grid block = block_index(first);
  const int64_t phase_index = block.x / m_tiles;
  const Phase phase(p, phase_index);
  const int64_t m0 = block.x % m_tiles * Tile::kBlockM;
  if (m0 >= p.N * phase.pixels) return;  // the whole block: phases differ in size
  const int group = static_cast<int>(block.z);
  const int n0 = static_cast<int>(block.y * Tile::kBlockN);

  GradOutputLoader<Tile, kPointwise, T, acc_t> a(p, phase, dy, group, m0);
  FilterLoader<Tile, T, acc_t> b(p, phase, w, group, n0);
  Accumulators<Tile, Op> acc(threadIdx.x);
  gemm_mainloop(p, a, b, 0, p.k_per_group() * phase.taps(), acc);

  const int64_t HW = p.H * p.W;
  const int64_t phase_h = phase_index / phase_count(p.stride_w, p.W);
  const int64_t phase_w = phase_index % phase_count(p.stride_w, p.W);
#pragma unroll
  for (int i = 0; i < Tile::kThreadM; ++i) {
    const int64_t m = m0 + acc.m(i);
    const int64_t n = m / phase.pixels;
    if (n >= p.N) continue;
    const int64_t ij = m % phase.pixels;
    const int64_t h_pos = phase_h + ij / phase.w.extent * p.stride_h;
    const int64_t w_pos = phase_w + ij % phase.w.extent * p.stride_w;
    T* pixel = dx + (n * p.C + group * p.c_per_group()) * HW + h_pos * p.W + w_pos;
#pragma unroll
    for (int j = 0; j < Tile::kThreadN; ++j) {
      const int c = n0 + acc.n(j);
      if (c >= p.c_per_group()) continue;
      const acc_t b_c = bias != nullptr ? acc_t(simt::ld_global(bias + group * p.c_per_group() + c)) : acc_t(0);
      simt::st_global(pixel + c * HW, static_cast<T>(acc.c[i][j] + b_c));
    }
  }
}

template <typename T, typename Op, class Tile, bool kPointwise>
void launch(const ConvParams& p, const T* dy, const T* w, const T* bias, T* dx,
            cudaStream_t stream) {
  // Sized for the largest phase, (0, 0); blocks past a smaller phase's end return at once.
  const int64_t phases = phase_count(p.stride_h, p.H) * phase_count(p.stride_w, p.W);
  const int64_t largest_phase = p.N * ceil_div(p.H, p.stride_h) * ceil_div(p.W, p.stride_w);
  const int64_t m_tiles = ceil_div<int64_t>(largest_phase, Tile::kBlockM);
  const Grid grid{phases * m_tiles, ceil_div<int64_t>(p.c_per_group(), Tile::kBlockN), p.groups};
  launch_grid(general_dgrad_kernel<T, Op, Tile, kPointwise>, grid, dim3(Tile::kThreads), 0,
              stream, p, dy, w, bias, dx, m_tiles);
}

}  // namespace dgrad_gemm

// dx = conv_transpose2d(dy, w) + bias, with every dx element written (bias or 0 where no dy
// element reaches it); bias (C values) may be nullptr. allow_tf32: float32 may run in TF32.
template <typename T>
void general_dgrad(const ConvParams& p, const T* dy, const T* w, const T* bias, T* dx,
                   bool allow_tf32, cudaStream_t stream) {
  with_gemm_config<T>(p, p.c_per_group(), allow_tf32,
                      [&]<typename Op, class Tile, bool kPointwise>() {
                        dgrad_gemm::launch<T, Op, Tile, kPointwise>(p, dy, w, bias, dx, stream);
                      });
}

}  // namespace convkernels::cuda
