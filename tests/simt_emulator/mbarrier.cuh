// mbarrier: the phase and transaction-count arithmetic step by step, a producer/consumer pipeline
// through two stages of shared memory, and kernels that misuse a barrier or wait on a phase that
// can never complete, which the emulator must report.
#pragma once

#include <cstdint>

#include "hopper/mbarrier.h"
#include "simt.h"

// One thread steps a barrier (count 2) through three phases; after each step it records whether the
// phases of parity 0 and of parity 1 count as completed: out[2 step], out[2 step + 1].
constexpr int kMbarrierSteps = 10;
__global__ void mbarrier_steps_kernel(int* out) {
  __shared__ uint64_t bar;
  int step = 0;
  const auto record = [&] {
    out[2 * step] = simt::mbarrier_test_wait_parity(&bar, 0);
    out[2 * step + 1] = simt::mbarrier_test_wait_parity(&bar, 1);
    ++step;
  };
  simt::mbarrier_init(&bar, 2);
  record();
  simt::mbarrier_arrive(&bar);
  record();
  simt::mbarrier_arrive(&bar);
  record();
  simt::mbarrier_arrive_expect_tx(&bar, 48);
  record();
  simt::mbarrier_arrive(&bar);
  record();
  simt::mbarrier_complete_tx(&bar, 32);
  record();
  simt::mbarrier_complete_tx(&bar, 16);
  record();
  simt::mbarrier_complete_tx(&bar, 8);  // bytes may land before they are announced
  record();
  simt::mbarrier_expect_tx(&bar, 8);
  record();
  simt::mbarrier_arrive(&bar);
  simt::mbarrier_arrive(&bar);
  record();
  simt::mbarrier_inval(&bar);
}

// Planted errors in the pipeline, which must make it fail.
enum class PipelinePlant { none, wrong_parity, missing_arrival };

// Warp 0 produces kPipelineRounds rounds of 96 ints through two stages of shared memory; warps 1-3
// consume them, one int a thread a round. full[s] (count 32) says stage s holds a round, empty[s]
// (count 96) that it has been read. Round r uses stage r % 2 for the (r / 2)-th time, so its phases
// have parity (r / 2) % 2; the producer's first wait on each empty stage passes at once, because
// the phase before the first one counts as completed.
constexpr int kPipelineRounds = 7;
__global__ void mbarrier_pipeline_kernel(const int* in, int* out, PipelinePlant plant) {
  __shared__ uint64_t full[2], empty[2];
  SIMT_DYNAMIC_SHARED(int, stages);  // [2][96], -1 until written
  const int t = threadIdx.x;
  if (t == 0) {
    for (int s = 0; s < 2; ++s) {
      simt::mbarrier_init(&full[s], 32);
      simt::mbarrier_init(&empty[s], 96);
    }
  }
  __syncthreads();
  for (int r = 0; r < kPipelineRounds; ++r) {
    const int s = r % 2;
    const unsigned parity = (r / 2) % 2;
    if (t < 32) {
      simt::mbarrier_wait_parity(&empty[s], parity ^ 1);
      for (int i = t; i < 96; i += 32) stages[96 * s + i] = in[96 * r + i];
      if (!(plant == PipelinePlant::missing_arrival && t == 31 && r == kPipelineRounds - 1)) {
        simt::mbarrier_arrive(&full[s]);
      }
    } else {
      simt::mbarrier_wait_parity(&full[s], plant == PipelinePlant::wrong_parity ? parity ^ 1 : parity);
      out[96 * r + t - 32] = stages[96 * s + t - 32];
      simt::mbarrier_arrive(&empty[s]);
    }
  }
}

// Misuse that the emulator reports as an error.
enum class MbarrierMisuse { uninitialised, after_inval, too_many_arrivals, zero_count, misaligned, tx_overflow };
__global__ void mbarrier_misuse_kernel(MbarrierMisuse misuse) {
  SIMT_DYNAMIC_SHARED(uint64_t, bars);  // 0xff bytes: not a barrier
  switch (misuse) {
    case MbarrierMisuse::uninitialised:
      simt::mbarrier_arrive(&bars[0]);
      break;
    case MbarrierMisuse::after_inval:
      simt::mbarrier_init(&bars[0], 1);
      simt::mbarrier_inval(&bars[0]);
      simt::mbarrier_wait_parity(&bars[0], 0);
      break;
    case MbarrierMisuse::too_many_arrivals:  // the phase waits for bytes, so the second arrival has none due
      simt::mbarrier_init(&bars[0], 1);
      simt::mbarrier_arrive_expect_tx(&bars[0], 16);
      simt::mbarrier_arrive(&bars[0]);
      break;
    case MbarrierMisuse::zero_count:
      simt::mbarrier_init(&bars[0], 0);
      break;
    case MbarrierMisuse::misaligned:
      simt::mbarrier_init(reinterpret_cast<uint64_t*>(reinterpret_cast<char*>(bars) + 4), 1);
      break;
    case MbarrierMisuse::tx_overflow:  // the tx-count holds at most 2^20 - 1 bytes
      simt::mbarrier_init(&bars[0], 1);
      simt::mbarrier_expect_tx(&bars[0], 1u << 20);
      break;
  }
}

inline void mbarrier_steps(int* out, cudaStream_t stream) {
  simt::launch(mbarrier_steps_kernel, dim3(1), dim3(1), 0, stream, out);
}
inline void mbarrier_pipeline(const int* in, int* out, PipelinePlant plant, cudaStream_t stream) {
  simt::launch(mbarrier_pipeline_kernel, dim3(1), dim3(128), 2 * 96 * sizeof(int), stream, in, out, plant);
}
inline void mbarrier_misuse(MbarrierMisuse misuse, cudaStream_t stream) {
  simt::launch(mbarrier_misuse_kernel, dim3(1), dim3(1), 16, stream, misuse);
}
