// The shared-memory tile machinery of the depthwise kernels (depthwise_{fprop,dgrad,wgrad}.cuh);
// how a tile is staged from global memory is depthwise_staging.cuh.
//
// Every depthwise computation here is reduced to one primitive, a unit-stride 1-D correlation
// between a row staged in shared memory and a short weight vector:
//
//   acc[j] += sum over o < length of weights[o] * src[o + j],   j < kVec
//
// run in register chunks of kVec x kVec fused multiply-adds. A chunk loads kVec new source values
// and kVec weights as two vector loads (the other kVec source values are carried over from the
// previous chunk), so shared-memory traffic is 2 / kVec loads per FMA instead of the 2 per FMA of a
// direct loop over taps. fprop and dgrad run it with the filter row as weights and kVec adjacent
// outputs of a thread as j; wgrad with a dy row as weights and kVec adjacent filter taps as j.
// A filter row's length need not be a multiple of kVec: its last chunk issues only the taps that
// exist (3 of 4 for a 3x3 filter), the padding is storage only.
//
// Strides and dilations are folded into the layout so the primitive stays unit-stride:
//  - A source row is staged in `phases` interleaved phases: staged (phase f, position t) holds
//    source column col0 + f + t * phases. With phases = stride_w, filter tap s of output column q
//    (relative to the tile) reads phase (s * dil_w) % stride_w at position q + (s * dil_w) / stride_w.
//  - The filter is staged "expanded": one row of taps_padded weights per (filter row, phase), where
//    expanded tap (f, o) holds w[s] for the s with s * dil_w == o * stride_w + f, and 0 where no tap
//    lands (dilation gaps, and the padding of the row to a multiple of kVec).
// Staged values are acc_t (float for the half types), so conversions happen once, at staging, and
// positions outside the source plane are staged as zeros: no bounds checks in the inner loop.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>

#include <c10/util/Exception.h>

#include "../conv_params.h"
#include "../simt/simt.h"
#include "launch.cuh"

namespace convkernels::cuda::depthwise {

constexpr int kVec = 4;              // outputs (fprop, dgrad) or taps (wgrad) per thread
// Threads per block, all kernels. The kernels carry no __launch_bounds__: with one, ptxas (CUDA 13)
// targets 64 registers and spills the double variants; without, they use 56-76 and spill nothing.
constexpr int kBlockThreads = 256;
constexpr std::size_t kSharedBudget = 64 * 1024;  // dynamic shared memory a launch aims to stay under
constexpr std::size_t kSharedLimit = 227 * 1024;  // the most a block may opt in to (sm_90)

// A tiling's shared memory, where its search could not bring it under kSharedBudget, against
// kSharedLimit: a clear error for a huge filter extent rather than a failed launch.
inline void check_shared_fits(std::size_t bytes, const char* kernel) {
  TORCH_CHECK(bytes <= kSharedLimit, kernel, ": the filter extent is too large for a shared-memory tile (", bytes,
              " bytes)");
}
// Values of a 16-byte staging load (depthwise_staging.cuh): 16 / sizeof(T), at most 8 (half types).
// A staged row may start up to one vector less one value before the tile, so fprop and dgrad keep
// kMaxVectorLength values free between a slice's filter and its tile.
constexpr int kMaxVectorLength = 8;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// kLength consecutive values moved as one access (LDS.128 / LDG.E.128 / STG.E.128 at 16 bytes).
template <typename E, int kLength>
struct alignas(sizeof(E) * kLength) Vector {
  E v[kLength];
};

// kVec consecutive staged values: a thread's outputs, or the chunk of a correlation.
template <typename acc_t>
using Fragment = Vector<acc_t, kVec>;

// The threads of a group of stage_rows_by_element (depthwise_staging.cuh), which stages one row
// at a time: a row's items rounded up to a power of two, at most 32 and at most the stagers.
__host__ __device__ inline int staging_group(int row_items, int threads) {
  return std::min(std::min(static_cast<int>(std::bit_ceil(static_cast<unsigned>(row_items))), threads), 32);
}

// The calling thread's index in its block, in the order that forms warps.
__device__ __forceinline__ unsigned block_thread() {
  return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

// A 32-byte fragment (float64) is two 16-byte accesses. With lanes 32 bytes apart, a quarter-warp's
// 8 first halves would fall on 4 of the 8 16-byte bank groups (2-way conflicts); lanes 4-7 of each
// quarter move their second half first, so each access's 8 halves meet 8 groups.
__device__ __forceinline__ bool second_half_first() { return (block_thread() & 4) != 0; }

template <typename acc_t>
__device__ __forceinline__ Fragment<acc_t> load_fragment(const acc_t* src) {
  if constexpr (sizeof(Fragment<acc_t>) == 32) {
    using Half = Vector<acc_t, kVec / 2>;
    const auto* halves = reinterpret_cast<const Half*>(src);
    const bool second_first = second_half_first();
    const Half one = simt::ld_shared(halves + second_first);
    const Half other = simt::ld_shared(halves + !second_first);
    Fragment<acc_t> fragment;
#pragma unroll
    for (int i = 0; i < kVec / 2; ++i) {  // selects of values: no local copy to index
      fragment.v[i] = second_first ? other.v[i] : one.v[i];
      fragment.v[kVec / 2 + i] = second_first ? one.v[i] : other.v[i];
    }
    return fragment;
  } else {
    return simt::ld_shared(reinterpret_cast<const Fragment<acc_t>*>(src));
  }
}

// The store of load_fragment: a float64 fragment as two halves, in the order second_half_first().
template <typename acc_t>
__device__ __forceinline__ void store_fragment(acc_t* dst, const Fragment<acc_t>& fragment) {
  if constexpr (sizeof(Fragment<acc_t>) == 32) {
    using Half = Vector<acc_t, kVec / 2>;
    auto* halves = reinterpret_cast<Half*>(dst);
    const bool second_first = second_half_first();
    Half one, other;
#pragma unroll
    for (int i = 0; i < kVec / 2; ++i) {  // selects of values: no local copy to index
      one.v[i] = second_first ? fragment.v[kVec / 2 + i] : fragment.v[i];
      other.v[i] = second_first ? fragment.v[i] : fragment.v[kVec / 2 + i];
    }
    simt::st_shared(halves + second_first, one);
    simt::st_shared(halves + !second_first, other);
  } else {
    simt::st_shared(reinterpret_cast<Fragment<acc_t>*>(dst), fragment);
  }
}

// acc[j] += sum over o < length of weights[o] * src[o + j], for j < outputs <= kVec (the rest of
// acc is left alone: the padding taps of a wgrad slot). src and weights are kVec-aligned; weights
// holds `length` rounded up to kVec values, src that many + kVec.
template <typename acc_t>
__device__ __forceinline__ void correlate(const acc_t* src, const acc_t* weights, int length,
                                          acc_t (&acc)[kVec], int outputs = kVec) {
  simt::note_fma<acc_t>(int64_t{length} * outputs);
  Fragment<acc_t> lo = load_fragment(src);
  for (int o = 0; o < length; o += kVec) {
    const Fragment<acc_t> hi = load_fragment(src + o + kVec);
    const Fragment<acc_t> wv = load_fragment(weights + o);
#pragma unroll
    for (int d = 0; d < kVec; ++d) {
      if (o + d >= length) break;  // the padding of a last, partial chunk: no tap there
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        if (j >= outputs) break;
        acc[j] += wv.v[d] * (j + d < kVec ? lo.v[j + d] : hi.v[j + d - kVec]);
      }
    }
    lo = hi;
  }
}

// The lanes of the calling thread's warp that exist: all 32 but in a block's partial last warp.
__device__ __forceinline__ unsigned warp_lanes() {
  const unsigned tid = block_thread();
  const unsigned lanes = std::min(32u, blockDim.x * blockDim.y * blockDim.z - (tid & ~31u));
  return lanes == 32 ? ~0u : (1u << lanes) - 1;
}

// c ? a : b of values (a conditional of two lvalues is an lvalue: a select of their addresses).
template <typename V>
__device__ __forceinline__ V pick(bool c, V a, V b) {
  return c ? a : b;
}

// A thread's kCount outputs, out[v] to dst[v * step] for the v < count (the rest lie outside the
// output row); nothing where !valid. Every thread of the block calls it (it shuffles in its warp).
// Outputs that are adjacent, whole and aligned go as 16-byte vector stores, else one by one.
// Where a thread's outputs span kPieces > 1 vectors (float32 pairs of dgrad phases, float64), a
// thread's own vector stores would land 16 of every 16 * kPieces bytes in each store instruction:
// groups of kPieces lanes instead exchange vectors so that store k of lane r writes vector r of lane
// k of its group, and each instruction writes whole runs of 16 * kPieces bytes.
template <typename T, typename acc_t, int kCount>
__device__ __forceinline__ void store_outputs(T* dst, int64_t step, int64_t count, bool valid,
                                              const acc_t (&out)[kCount]) {
  constexpr int kPiece = std::min<int>(kCount, 16 / sizeof(T));
  constexpr int kPieces = kCount / kPiece;
  static_assert(kPieces * kPiece == kCount && (kPieces & (kPieces - 1)) == 0);
  using Piece = Vector<T, kPiece>;
  const bool whole = valid && step == 1 && count >= kCount &&
                     reinterpret_cast<std::uintptr_t>(dst) % sizeof(Piece) == 0;
  const auto piece_of = [](const acc_t* values) {
    Piece piece;
#pragma unroll
    for (int v = 0; v < kPiece; ++v) piece.v[v] = static_cast<T>(values[v]);
    return piece;
  };

  if constexpr (kPieces > 1) {
    const unsigned lanes = warp_lanes();
    const unsigned lane = block_thread() % 32;
    const unsigned r = lane % kPieces, first_lane = lane - r;
    // Transpose the group's kPieces x kPieces vectors by butterfly: at bit b a lane swaps with lane
    // r ^ b the vectors whose index differs from r at b. Then vectors[k] is vector r of lane k.
    acc_t vectors[kPieces][kPiece];
#pragma unroll
    for (int v = 0; v < kCount; ++v) vectors[v / kPiece][v % kPiece] = out[v];
#pragma unroll
    for (int b = 1; b < kPieces; b *= 2) {
      const bool upper = (r & b) != 0;
#pragma unroll
      for (int k = 0; k < kPieces; ++k) {
        if (k & b) continue;
#pragma unroll
        for (int v = 0; v < kPiece; ++v) {
          // Selects of values, never of the array's elements: that would take their addresses and
          // put `vectors` in local memory.
          const acc_t lo = vectors[k][v], hi = vectors[k + b][v];
          const acc_t got = __shfl_xor_sync(lanes, pick(upper, lo, hi), b);
          vectors[k][v] = pick(upper, got, lo);
          vectors[k + b][v] = pick(upper, hi, got);
        }
      }
    }
    const auto mine = reinterpret_cast<unsigned long long>(dst);
    unsigned long long their_dst[kPieces];
#pragma unroll
    for (int k = 0; k < kPieces; ++k) their_dst[k] = __shfl_sync(lanes, mine, first_lane + k);
    const unsigned group = ((1u << kPieces) - 1) << first_lane;
    if ((__ballot_sync(lanes, whole) & group) == group) {
#pragma unroll
      for (int k = 0; k < kPieces; ++k) {  // store k: the group writes lane k's outputs
        simt::st_global(reinterpret_cast<Piece*>(reinterpret_cast<T*>(their_dst[k]) + r * kPiece),
                        piece_of(vectors[k]));
      }
      return;
    }
  }
  if (whole) {
#pragma unroll
    for (int first = 0; first < kCount; first += kPiece) {
      simt::st_global(reinterpret_cast<Piece*>(dst + first), piece_of(out + first));
    }
    return;
  }
  if (!valid) return;
#pragma unroll
  for (int v = 0; v < kCount; ++v) {
    if (v < count) simt::st_global(dst + v * step, static_cast<T>(out[v]));
  }
}

// Whether a tile's rows are better stored by store_tile_rows or store_planes: the tile is as wide
// as its plane (tiles_w == 1), so its rows are one run of the plane, but they are not whole 16-byte
// vectors of value_size-byte values (7x7 and 14x14 planes) or not whole runs of a thread's
// thread_values outputs (the last thread of a row has fewer, 28-wide dx rows of float32 pairs of
// dgrad phases), so store_outputs would store some one by one (2.6 times dx's sectors for those).
__host__ __device__ inline bool rows_by_run(int tiles_w, int64_t width, std::size_t value_size,
                                            int64_t thread_values) {
  return tiles_w == 1 && width % std::max<int64_t>(16 / value_size, thread_values) != 0;
}

// Where stage_outputs puts a tile's outputs: rows `pitch` acc_t apart, each thread's 16-byte
// pieces in order or rotated by lane, as PlaneTiling found fewest bank conflicts with the pitch.
struct OutputStaging {
  int pitch;
  bool rotated;

  // The piece of a thread's `pieces` 16-byte pieces of outputs that its store k writes. Lanes lie
  // 16 * pieces bytes apart; where rows lie back to back, storing piece k on every lane puts lanes
  // 8 / pieces apart on one bank group (2-way conflicts for float32 pairs of dgrad phases), and
  // rotated, each lane starts at piece lane * pieces / 8, so that a quarter-warp's 8 pieces meet 8
  // groups. Other pitches may want them in order (28-wide dx rows at stride 2 read back
  // conflict-free at a pitch of 60, where rotated pieces of the second row meet the first's groups).
  __host__ __device__ int piece_stored(int k, int lane, int pieces) const {
    return rotated ? (k + lane * pieces / 8) % pieces : k;
  }
};

// A thread's kCount outputs (of row threadIdx.y from column threadIdx.x * kCount) into `staged`,
// its slice's tile, free once its correlations are done: rows staging.pitch apart, room for
// tile_h of them, in 16-byte stores (OutputStaging::piece_stored). Every thread of the block calls
// it (it waits at barriers).
template <typename acc_t, int kCount>
__device__ void stage_outputs(const acc_t (&out)[kCount], acc_t* staged, OutputStaging staging) {
  constexpr int kPiece = std::min<int>(kCount, 16 / sizeof(acc_t));
  constexpr int kPieces = kCount / kPiece;
  using Piece = Vector<acc_t, kPiece>;
  const int lane = static_cast<int>(block_thread() % 32);
  __syncthreads();  // every slice's correlations are done with `staged`
#pragma unroll
  for (int k = 0; k < kPieces; ++k) {
    const int at = staging.piece_stored(k, lane, kPieces);
    Piece piece;
#pragma unroll
    for (int v = 0; v < kPiece; ++v) {
      acc_t value = out[v];  // selects of values: an index into `out` would put it in local memory
#pragma unroll
      for (int p = 1; p < kPieces; ++p) value = pick(p == at, out[p * kPiece + v], value);
      piece.v[v] = value;
    }
    simt::st_shared(
        reinterpret_cast<Piece*>(staged + threadIdx.y * staging.pitch + threadIdx.x * kCount + at * kPiece), piece);
  }
  __syncthreads();
}

// The tile's outputs, the first `rows` rows of which exist, stored at dst as rows of `width`
// values dst_pitch apart, through `staged` (stage_outputs): the slice stores each row with
// adjacent lanes on adjacent values, so that each sector is written once (a thread's values one
// by one touch each sector up to kCount times), and unit-stride rows (dst_pitch == width) as one
// run. rows is 0 in a slice with no plane. Every thread of the block calls it.
template <typename T, typename acc_t, int kCount>
__device__ void store_tile_rows(T* dst, int64_t dst_pitch, int64_t rows, int64_t width, OutputStaging staging,
                                const acc_t (&out)[kCount], acc_t* staged, int thread, int slice_threads) {
  stage_outputs(out, staged, staging);
  // 32-bit index math: a tile's outputs are a few thousand at most.
  const int run = static_cast<int>(rows * width), row_len = static_cast<int>(width);
  // Rows apart in dst (a strided input gradient's row phase): each pass of the slice's threads
  // stores whole rows where they fit, so that no request ends inside a second row's sectors.
  const int pass = dst_pitch == width || row_len > slice_threads ? slice_threads : slice_threads / row_len * row_len;
  for (int i = thread; thread < pass && i < run; i += pass) {
    const int row = i / row_len, col = i - row * row_len;
    simt::st_global(dst + row * dst_pitch + col, static_cast<T>(simt::ld_shared(staged + row * staging.pitch + col)));
  }
}

// Value i of a run of whole height x width planes as (plane, row, col), stepped by a fixed count
// with carries rather than divisions: a block's threads walk a run `threads` values apart.
struct RunPosition {
  int plane, row, col;

  __device__ RunPosition(int i, int height, int width)
      : plane(i / (height * width)), row(i / width % height), col(i % width) {}

  __device__ void advance(const RunPosition& step, int height, int width) {
    col += step.col;
    row += step.row + (col >= width);
    if (col >= width) col -= width;
    plane += step.plane + (row >= height);
    if (row >= height) row -= height;
  }
};

// The outputs of a block whose slices each compute a whole plane (one tile a plane), `planes` of
// them consecutive in memory from dst, height x width each, stored as one run through shared
// memory (stage_outputs, slice z's tile at staged + z * slice_len): the block's threads store
// consecutive values, so that each sector is written once where the slices' own runs (a plane of
// 7x7 floats is 196 bytes) share their first and last sectors with their neighbours'. The run is
// walked by whole warps, the threads past them sitting out, so that each request writes whole
// aligned sectors (a 28x28 bfloat16 plane's 196 threads, 32-value requests 196 values apart, wrote
// 70 sectors a plane for 49). Every thread of the block calls it.
template <typename T, typename acc_t, int kCount>
__device__ void store_planes(T* dst, int planes, int height, int width, OutputStaging staging,
                             const acc_t (&out)[kCount], acc_t* staged, int slice_len) {
  stage_outputs(out, staged + threadIdx.z * slice_len, staging);
  const int block_threads = static_cast<int>(blockDim.x * blockDim.y * blockDim.z);
  const int threads = block_threads >= 32 ? block_threads / 32 * 32 : block_threads;
  const int thread = static_cast<int>(block_thread());
  if (thread >= threads) return;
  const RunPosition step(threads, height, width);
  RunPosition at(thread, height, width);
  for (int i = thread; i < planes * height * width; i += threads) {
    simt::st_global(dst + i,
                    static_cast<T>(simt::ld_shared(staged + at.plane * slice_len + at.row * staging.pitch + at.col)));
    at.advance(step, height, width);
  }
}

// The filter column s whose dilated offset s * dil equals `offset`, or -1 if none does.
__device__ __forceinline__ int tap_at(int offset, int dil, int taps) {
  if (offset < 0 || offset % dil != 0) return -1;
  const int s = offset / dil;
  return s < taps ? s : -1;
}

// How fprop and dgrad cover an out_h x out_w output (in their unit-stride output coordinates)
// with blocks: each z-slice of a block (kBlockThreads / slices threads in x and y) computes a
// tile_h x tile_w output tile of one plane, kVec adjacent outputs of a row per thread. Narrow
// planes get narrow tiles, and small planes several planes per block, so that threads stay busy.
struct PlaneTiling {
  int tile_h, tile_w;           // outputs per slice; tile_w == block.x * kVec
  int tiles_h, tiles_w;         // tiles per plane
  int taps;                     // expanded filter row length
  int taps_padded;              // its storage: taps rounded up to kVec
  int used_len;                 // staged positions per phase that correlate() reads: tile_w + taps_padded
  int phase_len;                // their pitch: room for a row of 16-byte vectors, conflict-free stores
  int row_len;                  // a staged source row's pitch, its phases' and more: conflict-free reads
  int band;                     // filter rows staged per pass
  OutputStaging out_staging;    // how stage_outputs stages outputs: conflict-free where it can
  bool rows_run;                // the tile's rows stored by run (store_tile_rows), rows_by_run
  bool block_run;               // the block's output planes stored as one run (store_planes)
  int tile_offset;              // acc_t before a slice's tile: filter, then kMaxVectorLength free
  int slice_len;                // acc_t per z-slice
  dim3 block;
  int64_t blocks;

  std::size_t shared_bytes(std::size_t acc_size) const {
    return acc_size * static_cast<std::size_t>(slice_len) * block.z;
  }
};

// Where thread `thread` of a slice (rows of bx threads, row_step staged rows apart at row_len)
// starts its correlate() fragments in the slice's tile.
inline int64_t fragment_at(int64_t thread, int64_t bx, int64_t row_step, int64_t row_len) {
  return thread / bx * row_step * row_len + thread % bx * kVec;
}

// The bank conflicts of a warp's correlate() fragment loads: the 128-byte wavefronts they take
// beyond the fewest, offset(lane) being the staged value lane's fragment starts at (negative: the
// lane loads nothing). Lanes loading the same words share them (broadcast); otherwise the lanes
// that share a phase of the wavefronts (a quarter-warp for float, an eighth for double) take one
// wavefront per word that one bank holds for them. `values`: acc_t values a lane accesses, kVec (a
// fragment) or 1 (a staging store).
template <class Offset>
int64_t bank_conflicts(Offset offset, std::size_t acc_size, int64_t values = kVec) {
  constexpr int kBanks = 32, kWavefrontBytes = 128;
  const int64_t fragment_bytes = values * static_cast<int64_t>(acc_size);
  const int64_t lanes_per_phase = kWavefrontBytes / fragment_bytes;
  int64_t conflicts = 0;
  for (int64_t first = 0; first < 32; first += lanes_per_phase) {
    // The phase's distinct words (a phase moves 128 bytes at most: 32 words), then per bank.
    int64_t words[kBanks];
    int distinct = 0;
    for (int64_t lane = first; lane < first + lanes_per_phase; ++lane) {
      const int64_t at = offset(lane);
      if (at < 0) continue;
      const int64_t byte = at * static_cast<int64_t>(acc_size);
      for (int64_t word = byte / 4; word < (byte + fragment_bytes) / 4; ++word) {
        if (std::find(words, words + distinct, word) == words + distinct) words[distinct++] = word;
      }
    }
    int in_bank[kBanks] = {};
    int wavefronts = 0;
    for (int w = 0; w < distinct; ++w) wavefronts = std::max(wavefronts, ++in_bank[words[w] % kBanks]);
    if (wavefronts > 1) conflicts += wavefronts - 1;
  }
  return conflicts;
}

// `least` plus the least multiple of `step`, within a bank cycle, for which conflicts_at(pitch) is
// the fewest.
template <class ConflictsAt>
int least_conflict_pitch(int64_t least, int64_t step, ConflictsAt conflicts_at) {
  int64_t best = least, fewest = conflicts_at(least);
  for (int64_t pitch = least + step; fewest > 0 && pitch < least + 32; pitch += step) {
    const int64_t conflicts = conflicts_at(pitch);
    if (conflicts < fewest) best = pitch, fewest = conflicts;
  }
  return static_cast<int>(best);
}

// The pitch of the phases of a row that stage_rows_by_element stages, item i of the row to phase
// i % phases at i / phases, `used_len` values a phase: the one with the fewest bank conflicts of a
// warp's 32 adjacent items from any multiple of 32 (a whole warp's, or those of small slices that
// share one, at slice pitches that keep them apart), room for them all.
inline int phase_pitch(int64_t phases, int64_t used_len, std::size_t acc_size) {
  return least_conflict_pitch(round_up(std::max(used_len, ceil_div(32, phases)), kVec), kVec, [&](int64_t pitch) {
    int64_t conflicts = 0;
    for (int64_t first = 0; first < 32 * phases; first += 32) {
      conflicts += bank_conflicts(
          [&](int64_t lane) { return (first + lane) % phases * pitch + (first + lane) / phases; }, acc_size, 1);
    }
    return conflicts;
  });
}

// The bank conflicts of stage_rows_by_element's stores of `rows` staged rows `pitch` apart, each
// `phases` phases phase_len apart of used_len positions: its groups of threads (a row's items
// rounded up to a power of two, at most 32) stage consecutive rows in one warp's requests.
inline int64_t element_staging_conflicts(int64_t rows, int64_t phases, int64_t phase_len, int64_t used_len,
                                         int64_t pitch, std::size_t acc_size) {
  const int64_t row_items = phases * used_len, group = staging_group(static_cast<int>(row_items), 32);
  int64_t conflicts = 0;
  for (int64_t first = 0; first < rows; first += 32 / group) {
    conflicts += bank_conflicts([&](int64_t lane) {
      const int64_t row = lane / group, item = lane % group;
      return first + row < rows && item < row_items ? row * pitch + item % phases * phase_len + item / phases : -1;
    }, acc_size, 1);
  }
  return conflicts;
}

// The pitch of staged rows that correlate() reads `used_len` values of: whole 16-byte vectors of
// value_size-byte values that cover them wherever the row starts within a vector (what
// depthwise_staging.cuh needs to stage it in vectors), then the least extra, in whole fragments,
// for which conflicts_at(pitch) is the fewest. (A pitch in whole vectors would keep half-type rows
// a multiple of 32 bytes apart: 28-wide bfloat16 planes, 7 threads a row, then read with 2304
// bank conflicts on 16 planes, where a pitch of 28 mod 32 values has none.)
template <class ConflictsAt>
int staged_pitch(int64_t used_len, std::size_t value_size, ConflictsAt conflicts_at) {
  const int64_t vector_len = static_cast<int64_t>(16 / value_size);
  return least_conflict_pitch(round_up(used_len + vector_len - 1, std::max<int64_t>(vector_len, kVec)), kVec,
                              conflicts_at);
}

// A slice stages `filter_rows` expanded filter rows and, per pass over `band` filter rows, at most
// rows_for_band(tile_h, band) source rows of `phases` phases of a tensor of value_size-byte values;
// consecutive thread rows read staged rows `row_step` source rows apart. The band is the whole
// filter unless that overflows kSharedBudget (huge dilations). A thread's outputs are
// kVec * column_phases adjacent values of a row (dgrad takes both column phases at stride 2); where
// store_tile_rows or store_planes stages them, rows lie out_staging.pitch apart, and are read back
// as runs of rows of stored_w values (the output plane's width; 0 where a tile's rows are not
// whole rows of it, as a column phase of a strided input gradient at stride 3 and more).
//
// A strided row is staged element by element, a warp's lanes on adjacent columns, so that lane i
// stores into phase i % phases: phase_len is chosen so those stores fall in distinct banks (16
// values mod 32 at stride 2). The reads then step by whole rows, stride_h of them between thread
// rows; the phases' pitch being a multiple of the vector, stride_h * phases * phase_len would put
// thread rows in the same banks (4 * phase_len at stride 2): the rows take a pitch of their own,
// row_len, with the extra values that keep the reads conflict-free.
//
// A tile row is bx threads: those of its outputs (plane_tiling) or more (plane_tiling_of_width).
template <class RowsForBand>
PlaneTiling plane_tiling_of_width(int64_t bx, int64_t planes, int64_t out_h, int64_t out_w, int64_t kernel_h,
                                  int64_t taps, int64_t phases, int64_t filter_rows, int64_t row_step,
                                  int64_t column_phases, int64_t stored_w, bool consecutive_planes,
                                  std::size_t value_size, std::size_t acc_size, RowsForBand rows_for_band) {
  PlaneTiling t{};
  const int64_t by_max = kBlockThreads / bx;
  t.tiles_h = static_cast<int>(ceil_div(out_h, by_max));
  int64_t by = ceil_div(out_h, t.tiles_h);  // even split: no mostly-empty last tile
  // Small slices share a warp. Unless their threads are a power of two, a slice starts inside a
  // quarter-warp (the lanes of a 16-byte access's wavefront), whose loads and stores then meet the
  // neighbouring slice's banks (7x7 planes: 14 threads, 231 conflicts on 32 planes). Where the
  // power of two is a whole quarter-warp or more and at most a quarter of its threads would idle,
  // rows of outputs past the plane make it up (7x7: 16 threads, 48 conflicts and 15% fewer shared
  // wavefronts; 6x6: 11% fewer). With more idle threads (5x5: 10 of 16) their loads cost more.
  const int64_t pow2_threads = static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(bx * by)));
  if (pow2_threads >= 8 && pow2_threads < 32 && 32 % bx == 0 && 3 * pow2_threads <= 4 * bx * by) {
    by = pow2_threads / bx;
  }
  t.tile_w = static_cast<int>(bx * kVec);
  t.tile_h = static_cast<int>(by);
  t.tiles_w = static_cast<int>(ceil_div(out_w, t.tile_w));
  t.taps = static_cast<int>(taps);
  t.taps_padded = static_cast<int>(round_up(taps, kVec));
  t.used_len = t.tile_w + t.taps_padded;
  const auto read_conflicts = [&](int64_t row_len) {
    return bank_conflicts([&](int64_t lane) { return fragment_at(lane, bx, row_step, row_len); }, acc_size);
  };
  if (phases == 1) {
    t.phase_len = t.row_len = staged_pitch(t.used_len, value_size, read_conflicts);
  } else {
    // Staged element by element: pitches need only keep correlate()'s kVec fragments aligned.
    t.phase_len = phase_pitch(phases, t.used_len, acc_size);
    t.row_len = least_conflict_pitch(phases * t.phase_len, kVec, read_conflicts);
  }
  t.tile_offset = static_cast<int>(filter_rows * t.taps_padded + kMaxVectorLength);

  const int64_t thread_outputs = kVec * column_phases;
  const int64_t piece = std::min<int64_t>(thread_outputs, 16 / static_cast<int64_t>(acc_size));  // a 16-byte store
  const int64_t pieces = thread_outputs / piece;
  // Where rows are stored by run, slices that each compute a whole plane of a block's consecutive
  // output planes store them as one run (store_planes), other tiles their rows (store_tile_rows).
  // Either reads back a run of a tile's rows, a value a lane: rows of stored_w values whose pitch,
  // unless it is stored_w mod 32, puts a warp's first and last values in one bank where it spans
  // two rows (28-wide bfloat16 dx rows at stride 2: 392 conflicts in 3992 wavefronts on 16 planes
  // at the staging stores' best pitch).
  t.rows_run = rows_by_run(t.tiles_w, stored_w, value_size, thread_outputs);
  t.block_run = t.rows_run && consecutive_planes && t.tiles_h == 1;
  const int64_t run = t.rows_run ? (t.block_run ? out_h : by) * stored_w : 0;
  // Where value i of a run of rows of stored_w values lies in their staging at `pitch`.
  const auto staged_at = [&](int64_t i, int64_t pitch) { return i / stored_w * pitch + i % stored_w; };
  const int64_t warps = ceil_div(bx * by, 32);
  const auto output_conflicts = [&](OutputStaging staging) {
    int64_t conflicts = 0;
    for (int64_t k = 0; k < pieces; ++k) {  // stage_outputs' stores, one by one, in every warp
      conflicts += warps * bank_conflicts([&](int64_t lane) {
        const int at = staging.piece_stored(static_cast<int>(k), static_cast<int>(lane), static_cast<int>(pieces));
        return lane / bx * staging.pitch + lane % bx * thread_outputs + at * piece;
      }, acc_size, piece);
    }
    for (int64_t first = 0; first < run; first += 32) {
      conflicts += bank_conflicts([&](int64_t lane) {
        const int64_t i = first + lane;
        return i < run ? staged_at(i, staging.pitch) : -1;
      }, acc_size, 1);
    }
    return conflicts;
  };
  // The best pitch (whole 16-byte pieces) with rotated pieces, unless pieces in order do better.
  int64_t fewest = -1;
  for (const bool rotated : {true, false}) {
    const OutputStaging staging{least_conflict_pitch(t.tile_w * column_phases, piece, [&](int64_t pitch) {
                                  return output_conflicts({static_cast<int>(pitch), rotated});
                                }),
                                rotated};
    const int64_t conflicts = output_conflicts(staging);
    if (fewest < 0 || conflicts < fewest) t.out_staging = staging, fewest = conflicts;
    if (fewest == 0) break;
  }
  const auto slice_len = [&](int64_t band) {
    return t.tile_offset + std::max(rows_for_band(by, band) * t.row_len, int64_t{by} * t.out_staging.pitch);
  };
  int64_t bz = std::clamp<int64_t>(kBlockThreads / (bx * by), 1, std::min<int64_t>(planes, 64));
  int64_t band = kernel_h;
  while (bz > 1 && static_cast<std::size_t>(slice_len(band) * bz) * acc_size > kSharedBudget) --bz;
  while (band > 1 && static_cast<std::size_t>(slice_len(band)) * acc_size > kSharedBudget) --band;
  t.band = static_cast<int>(band);
  // Slices whole 16-byte vectors apart, so that where slices share a warp the stores of a
  // vector staging conflict nowhere (depthwise_staging.cuh); and at the distance, within a bank
  // cycle, where their other accesses conflict least: the stores of the filter (value i by the
  // slice's thread i) and of an element by element staging (item i of a row by thread i), once a
  // staged row, correlate()'s fragment loads, once a filter row's phase and fragment, and the
  // outputs' read-back where rows are stored by run: store_tile_rows' passes of a slice's run,
  // store_planes' of the block's slices' runs as one (value i of the block in slice i / run).
  const int64_t slice_threads = bx * by, staged_items = phases * t.used_len;
  const int64_t staged_rows = rows_for_band(by, band), loads = band * phases * (t.taps_padded / kVec + 1);
  const int64_t step = std::max<int64_t>(kVec, 16 / static_cast<int64_t>(value_size));
  t.slice_len = least_conflict_pitch(round_up(slice_len(band), step), step, [&](int64_t len) {
    int64_t conflicts = 0;
    for (int64_t warp = 0; slice_threads % 32 != 0 && warp < ceil_div(bz * slice_threads, 32); ++warp) {
      int64_t base[32], thread[32];  // a lane's slice's first value (-1: no slice) and its thread in it
      for (int64_t lane = 0; lane < 32; ++lane) {
        const int64_t slice = (warp * 32 + lane) / slice_threads;
        base[lane] = slice < bz ? slice * len : -1;
        thread[lane] = (warp * 32 + lane) % slice_threads;
      }
      const int64_t filter_values = filter_rows * t.taps_padded;
      for (int64_t first = 0; first < filter_values; first += slice_threads) {
        const auto store = [&](int64_t lane) {
          return base[lane] < 0 || first + thread[lane] >= filter_values ? -1 : base[lane] + first + thread[lane];
        };
        conflicts += bank_conflicts(store, acc_size, 1);
      }
      for (int64_t first = 0; first < staged_items; first += slice_threads) {
        const auto store = [&](int64_t lane) {
          const int64_t item = first + thread[lane];
          return base[lane] < 0 || item >= staged_items ? -1
                                                        : base[lane] + item % phases * t.phase_len + item / phases;
        };
        conflicts += staged_rows * bank_conflicts(store, acc_size, 1);
      }
      const auto load = [&](int64_t lane) {
        return base[lane] < 0 ? -1
                              : base[lane] + fragment_at(thread[lane], bx, row_step, t.row_len);
      };
      conflicts += loads * bank_conflicts(load, acc_size);
      for (int64_t pass = 0; !t.block_run && pass < run; pass += slice_threads) {
        conflicts += bank_conflicts([&](int64_t lane) {
          const int64_t i = pass + thread[lane];
          return base[lane] < 0 || i >= run ? -1 : base[lane] + staged_at(i, t.out_staging.pitch);
        }, acc_size, 1);
      }
    }
    for (int64_t first = 0; t.block_run && first < bz * run; first += 32) {
      conflicts += bank_conflicts([&](int64_t lane) {
        const int64_t i = first + lane;
        return i < bz * run ? i / run * len + staged_at(i % run, t.out_staging.pitch) : -1;
      }, acc_size, 1);
    }
    return conflicts;
  });
  t.block = dim3(static_cast<unsigned>(bx), static_cast<unsigned>(by), static_cast<unsigned>(bz));
  t.blocks = ceil_div(planes, bz) * t.tiles_h * t.tiles_w;
  return t;
}

// The bank conflicts of a launch's correlate() fragment loads, per load of every thread: each
// warp's, slices and all.
inline int64_t fragment_conflicts(const PlaneTiling& t, int64_t row_step, std::size_t acc_size) {
  const int64_t slice_threads = int64_t{t.block.x} * t.block.y, threads = slice_threads * t.block.z;
  int64_t block = 0;
  for (int64_t warp = 0; warp < ceil_div(threads, 32); ++warp) {
    block += bank_conflicts([&](int64_t lane) {
      const int64_t thread = warp * 32 + lane;
      return thread < threads ? thread / slice_threads * t.slice_len +
                                    fragment_at(thread % slice_threads, t.block.x, row_step, t.row_len)
                              : -1;
    }, acc_size);
  }
  return t.blocks * block;
}

// The shared wavefronts of those loads: each warp's fewest (a 16-byte fragment a lane: 4) and its
// conflicts.
inline int64_t fragment_wavefronts(const PlaneTiling& t, int64_t row_step, std::size_t acc_size) {
  const int64_t warps = ceil_div(int64_t{t.block.x} * t.block.y * t.block.z, 32);
  const int64_t fewest = kVec * static_cast<int64_t>(acc_size) * 32 / 128;
  return t.blocks * warps * fewest + fragment_conflicts(t, row_step, acc_size);
}

// plane_tiling_of_width for rows of the threads the output's width takes, or more. A quarter-warp
// (the lanes of a 16-byte load's wavefront) that spans two thread rows of bx threads, bx neither a
// divisor nor a multiple of 8, may meet the same bank groups in both whatever the pitch: 28
// outputs at stride 2 are 7 threads a row, their rows 2 staged rows apart, a pitch that would
// part them 28 values mod 32 is not a whole fragment (4608 conflicts in 13648 wavefronts on 16
// 56x56 planes). Rows of the next such width (8) are tried too: the tiling whose fragment loads
// take fewer wavefronts is kept, the narrower on a tie (fewer idle threads); where the narrower's
// loads meet no conflict, the wider is not built.
template <class RowsForBand>
PlaneTiling plane_tiling(int64_t planes, int64_t out_h, int64_t out_w, int64_t kernel_h,
                         int64_t taps, int64_t phases, int64_t filter_rows, int64_t row_step,
                         int64_t column_phases, int64_t stored_w, bool consecutive_planes,
                         std::size_t value_size, std::size_t acc_size, RowsForBand rows_for_band) {
  const auto of_width = [&](int64_t bx) {
    return plane_tiling_of_width(bx, planes, out_h, out_w, kernel_h, taps, phases, filter_rows, row_step,
                                 column_phases, stored_w, consecutive_planes, value_size, acc_size, rows_for_band);
  };
  const int64_t bx = std::clamp<int64_t>(ceil_div(out_w, kVec), 1, 32);
  const int64_t round_bx = bx < 8 ? static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(bx))) : round_up(bx, 8);
  PlaneTiling t = of_width(bx);
  if (round_bx != bx && fragment_conflicts(t, row_step, acc_size) > 0) {
    const PlaneTiling wider = of_width(round_bx);
    if (fragment_wavefronts(wider, row_step, acc_size) < fragment_wavefronts(t, row_step, acc_size)) t = wider;
  }
  check_shared_fits(t.shared_bytes(acc_size), "depthwise convolution");
  return t;
}

// Where a thread of a PlaneTiling launch works: its plane, its output tile and its place in it.
struct TileCoord {
  int64_t plane;  // may be >= planes in the last block: then the slice computes nothing useful
  int tile_row, tile_col;  // tile index within the plane
  int thread;              // index within the slice
  int slice_threads;

  __device__ TileCoord(const PlaneTiling& t, const Grid& first) {
    const int64_t tiles = int64_t{t.tiles_h} * t.tiles_w;
    const int64_t block = block_index(first).x;
    const int64_t tile = block % tiles;
    plane = block / tiles * blockDim.z + threadIdx.z;
    tile_row = static_cast<int>(tile / t.tiles_w);
    tile_col = static_cast<int>(tile % t.tiles_w);
    thread = threadIdx.x + threadIdx.y * blockDim.x;
    slice_threads = blockDim.x * blockDim.y;
  }
};

}  // namespace convkernels::cuda::depthwise
