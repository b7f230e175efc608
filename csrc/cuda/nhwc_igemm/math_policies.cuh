// How a channels_last GEMM multiplies: the warp-level Mma for operands staged along the GEMM's k
// (fprop and dgrad, swizzled rows: Mma) and for operands staged as [k][m] / [k][n] rows (wgrad:
// TransposedMma), and the tile fprop and dgrad take where a group has more than 64 output
// channels: 128x128 with 64x64 tensor-core warps; with 8 CUDA-core warps; 3xTF32 keeps the 128x64
// tile (its split fragments need the registers). float64 always takes Float64Tile. kName: the
// math as the tile table's keys name it (tile_choice.cuh).
#pragma once

#include "cuda_core_mma.cuh"
#include "tile_shape.cuh"
#include "transposed_cuda_core_mma.cuh"
#include "transposed_warp_mma.cuh"
#include "warp_mma.cuh"
#include "warpgroup_mma.cuh"

namespace convkernels::cuda::nhwc_igemm {

// float16, bfloat16, and float32 in TF32.
struct TensorCoreMath {
  static constexpr const char* kName = "mma.sync";
  template <class Tile, typename T>
  using Mma = WarpMma<Tile, T>;
  template <class Tile, typename T>
  using TransposedMma = TransposedWarpMma<Tile, T>;
  using Wide = WideTile;
};

// float32 as three TF32 products (set_float32_precision("3xtf32")).
struct ThreeTf32Math {
  static constexpr const char* kName = "3xTF32 mma.sync";
  template <class Tile, typename T>
  using Mma = WarpMma<Tile, T, /*kThreeTf32=*/true>;
  template <class Tile, typename T>
  using TransposedMma = TransposedWarpMma<Tile, T, /*kThreeTf32=*/true>;
  using Wide = NarrowTile;
};

// float16, bfloat16 and float32 in TF32 on warpgroups with wgmma (sm_90a; fprop and dgrad:
// conv_kernel.cuh chooses it on an sm_90 GPU).
struct WarpgroupMath {
  template <class Tile, typename T>
  using Mma = WarpgroupMma<Tile, T>;
};

// IEEE float32 and float64.
struct CudaCoreMath {
  static constexpr const char* kName = "FMA";
  template <class Tile, typename T>
  using Mma = CudaCoreMma<Tile, T>;
  template <class Tile, typename T>
  using TransposedMma = TransposedCudaCoreMma<Tile, T>;
  using Wide = WideCudaCoreTile;
};

}  // namespace convkernels::cuda::nhwc_igemm
