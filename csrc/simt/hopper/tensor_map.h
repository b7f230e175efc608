// Tensor maps for the tensor memory accelerator, encoded on the host, written once for nvcc and
// the emulator:
//   simt::encode_tensor_map_tiled(map, type, rank, global, dims, strides, box, element_strides,
//                                 interleave, swizzle, l2_promotion, oob_fill)
// with the signature and rules of the driver's cuTensorMapEncodeTiled (cuda.h documents them): rank
// 1 to 5; a 16-byte-aligned global address; dims 1 to 2^32; rank - 1 byte strides, multiples of 16
// below 2^40; a box of 1 to 256 elements a dimension whose inner extent is a multiple of 16 bytes
// and, when swizzled, at most the swizzle span (32, 64 or 128 bytes); element strides 1 to 8 (the
// first ignored); NaN fill only for floating-point types. Under nvcc it calls the driver's
// function. The emulator writes its own encoding into the map's 128 opaque bytes and models
// interleave NONE with swizzle NONE/32B/64B/128B and the unpacked data types; where the driver
// returns CUDA_ERROR_INVALID_VALUE the emulator throws a simt::Error naming the rule, and it
// throws "not modelled" for the rest.
//
// A kernel takes the map as a `const __grid_constant__ CUtensorMap` parameter and passes its
// address to the bulk tensor copy (bulk_tensor_copy.h).
#pragma once

#include <cuda.h>

#include <cstdint>

#if defined(__CUDACC__)
#include <cuda_runtime_api.h>
#include <cudaTypedefs.h>
#else
#include <string>

#include "../error.h"
#endif

namespace simt {

#if defined(__CUDACC__)

inline CUresult encode_tensor_map_tiled(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* global,
                                        const cuuint64_t* dims, const cuuint64_t* strides, const cuuint32_t* box,
                                        const cuuint32_t* element_strides, CUtensorMapInterleave interleave,
                                        CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2_promotion,
                                        CUtensorMapFloatOOBfill oob_fill) {
  // Through the runtime's entry point, so that nothing links against libcuda itself.
  static const auto encode = [] {
    void* function = nullptr;
    cudaDriverEntryPointQueryResult found;
    cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &function, 12000, cudaEnableDefault, &found);
    return found == cudaDriverEntryPointSuccess ? reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(function)
                                                : nullptr;
  }();
  if (encode == nullptr) return CUDA_ERROR_NOT_FOUND;
  return encode(map, type, rank, global, dims, strides, box, element_strides, interleave, swizzle, l2_promotion,
                oob_fill);
}

#else

namespace detail {

inline constexpr int kTensorMapMaxRank = 5;
inline constexpr uint64_t kTensorMapTag = 0x73696d74746d6170ull;  // "simttmap"

// What the emulator keeps in a CUtensorMap's opaque words.
struct TensorMapFields {
  const unsigned char* global;
  uint64_t dims[kTensorMapMaxRank];
  uint64_t strides[kTensorMapMaxRank - 1];  // bytes between steps of dimension i + 1
  uint16_t box[kTensorMapMaxRank];
  uint8_t element_strides[kTensorMapMaxRank];
  uint8_t rank;
  uint8_t element_bytes;
  uint8_t swizzle_span;  // 0 (none), 32, 64 or 128 bytes
  bool floating;
  bool nan_fill;

  uint64_t stride(unsigned i) const { return i == 0 ? element_bytes : strides[i - 1]; }
};
static_assert(sizeof(TensorMapFields) + sizeof(uint64_t) <= sizeof(CUtensorMap), "the fields fit a tensor map");

// Bytes per element of the unpacked types; 0 for the packed ones (not modelled).
inline unsigned tensor_map_element_bytes(CUtensorMapDataType type) {
  switch (type) {
    case CU_TENSOR_MAP_DATA_TYPE_UINT8: return 1;
    case CU_TENSOR_MAP_DATA_TYPE_UINT16:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT16:
    case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16: return 2;
    case CU_TENSOR_MAP_DATA_TYPE_UINT32:
    case CU_TENSOR_MAP_DATA_TYPE_INT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32_FTZ:
    case CU_TENSOR_MAP_DATA_TYPE_TFLOAT32:
    case CU_TENSOR_MAP_DATA_TYPE_TFLOAT32_FTZ: return 4;
    case CU_TENSOR_MAP_DATA_TYPE_UINT64:
    case CU_TENSOR_MAP_DATA_TYPE_INT64:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT64: return 8;
    default: return 0;
  }
}

inline bool tensor_map_floating(CUtensorMapDataType type) {
  switch (type) {
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT16:
    case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32_FTZ:
    case CU_TENSOR_MAP_DATA_TYPE_TFLOAT32:
    case CU_TENSOR_MAP_DATA_TYPE_TFLOAT32_FTZ:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT64: return true;
    default: return false;
  }
}

inline void tensor_map_require(bool holds, const std::string& rule) {
  if (!holds) throw Error("simt: cuTensorMapEncodeTiled: " + rule);
}

inline const TensorMapFields& tensor_map_fields(const CUtensorMap* map, const char* op) {
  if (map->opaque[0] != kTensorMapTag) {
    throw Error(std::string("simt: ") + op + ": the tensor map was not encoded by simt::encode_tensor_map_tiled");
  }
  return *reinterpret_cast<const TensorMapFields*>(&map->opaque[1]);
}

}  // namespace detail

inline CUresult encode_tensor_map_tiled(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* global,
                                        const cuuint64_t* dims, const cuuint64_t* strides, const cuuint32_t* box,
                                        const cuuint32_t* element_strides, CUtensorMapInterleave interleave,
                                        CUtensorMapSwizzle swizzle, CUtensorMapL2promotion /*l2_promotion*/,
                                        CUtensorMapFloatOOBfill oob_fill) {
  using detail::tensor_map_require;
  detail::TensorMapFields f{};
  f.element_bytes = static_cast<uint8_t>(detail::tensor_map_element_bytes(type));
  tensor_map_require(f.element_bytes != 0, "packed data types are not modelled");
  tensor_map_require(interleave == CU_TENSOR_MAP_INTERLEAVE_NONE, "interleaved layouts are not modelled");
  tensor_map_require(swizzle <= CU_TENSOR_MAP_SWIZZLE_128B, "the 128B_ATOM swizzle modes are not modelled");
  tensor_map_require(reinterpret_cast<uintptr_t>(map) % 64 == 0, "the tensor map must be 64-byte aligned");
  tensor_map_require(rank >= 1 && rank <= detail::kTensorMapMaxRank, "the rank is 1 to 5");
  tensor_map_require(reinterpret_cast<uintptr_t>(global) % 16 == 0, "the global address must be 16-byte aligned");
  f.global = static_cast<const unsigned char*>(global);
  f.rank = static_cast<uint8_t>(rank);
  f.floating = detail::tensor_map_floating(type);
  f.swizzle_span = static_cast<uint8_t>(swizzle == CU_TENSOR_MAP_SWIZZLE_NONE ? 0 : 16u << swizzle);
  f.nan_fill = oob_fill == CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA;
  tensor_map_require(!f.nan_fill || f.floating, "NaN fill needs a floating-point data type");
  for (unsigned i = 0; i < rank; ++i) {
    const std::string dim = "[" + std::to_string(i) + "]";
    tensor_map_require(dims[i] >= 1 && dims[i] <= (uint64_t{1} << 32), "globalDim" + dim + " must be 1 to 2^32");
    tensor_map_require(box[i] >= 1 && box[i] <= 256, "boxDim" + dim + " must be 1 to 256");
    tensor_map_require(element_strides[i] >= 1 && element_strides[i] <= 8, "elementStrides" + dim + " must be 1 to 8");
    f.dims[i] = dims[i];
    f.box[i] = static_cast<uint16_t>(box[i]);
    f.element_strides[i] = static_cast<uint8_t>(i == 0 ? 1 : element_strides[i]);  // ignored without interleave
    if (i > 0) {
      tensor_map_require(strides[i - 1] % 16 == 0 && strides[i - 1] < (uint64_t{1} << 40),
                         "globalStrides[" + std::to_string(i - 1) + "] must be a multiple of 16 below 2^40");
      f.strides[i - 1] = strides[i - 1];
    }
  }
  const unsigned inner_bytes = box[0] * f.element_bytes;
  tensor_map_require(inner_bytes % 16 == 0, "boxDim[0] times the element size must be a multiple of 16 bytes");
  tensor_map_require(f.swizzle_span == 0 || inner_bytes <= f.swizzle_span,
                     "the box's inner extent (" + std::to_string(inner_bytes) + " bytes) must not exceed the " +
                         std::to_string(f.swizzle_span) + "-byte swizzle span");
  *map = CUtensorMap{};
  map->opaque[0] = detail::kTensorMapTag;
  *reinterpret_cast<detail::TensorMapFields*>(&map->opaque[1]) = f;
  return CUDA_SUCCESS;
}

#endif

}  // namespace simt
