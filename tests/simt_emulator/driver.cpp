// Runs one emulator test case by name: `driver CASE` exits 0 when the case holds, 1 with a reason
// when it does not. `driver --list` prints the case names. The launches run under simt::config()
// (the SIMT_* environment variables) unless a case sets its own. SIMT_TEST_PLANT names an error
// that the fragment layout cases plant in their kernels (a swapped register), which must fail them.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "async_copy.cuh"
#include "atomics.cuh"
#include "block_reduce.cuh"
#include "bulk_copy.cuh"
#include "counters.cuh"
#include "deadlock.cuh"
#include "dynamic_shared.cuh"
#include "half_bf16.cuh"
#include "matrix_load.cuh"
#include "mbarrier.cuh"
#include "missing_barrier.cuh"
#include "ptx_fragment_tables.h"
#include "tensor_copy.cuh"
#include "tma_pipeline.cuh"
#include "tma_wgmma.cuh"
#include "tensor_core_mma.cuh"
#include "thread_indexing.cuh"
#include "warp_shuffle.cuh"
#include "warpgroup_mma.cuh"

namespace {

void expect(bool holds, const std::string& what) {
  if (!holds) throw std::runtime_error(what);
}

template <class T>
void expect_equal(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  for (std::size_t i = 0; i < want.size(); ++i) {
    expect(got[i] == want[i], what + ": element " + std::to_string(i) + " is " + std::to_string(got[i]) +
                                  ", expected " + std::to_string(want[i]));
  }
}

// The launch must fail with a simt::Error whose message contains every fragment.
void expect_simt_error(const std::function<void()>& launch, const std::vector<std::string>& fragments) {
  try {
    launch();
  } catch (const simt::Error& e) {
    for (const std::string& fragment : fragments) {
      expect(std::string(e.what()).find(fragment) != std::string::npos,
             "error message lacks '" + fragment + "':\n" + e.what());
    }
    std::printf("%s\n", e.what());
    return;
  }
  throw std::runtime_error("the launch succeeded, expected a simt::Error");
}

// Small deterministic values (exact in every type used here).
std::vector<int> ints(int n, int offset = 0) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = (i * 37 + offset) % 101 - 50;
  return v;
}

void block_reduce() {
  const int n = 1000;  // three full blocks and a partial one
  const std::vector<int> values = ints(n);
  const std::vector<float> in(values.begin(), values.end());
  std::vector<float> sums(4);
  block_sum(in.data(), sums.data(), n, nullptr);
  for (int b = 0; b < 4; ++b) {
    const int end = std::min(n, 256 * (b + 1));
    const float want = std::accumulate(in.begin() + 256 * b, in.begin() + end, 0.0f);
    expect(sums[b] == want, "block " + std::to_string(b) + " sums to " + std::to_string(sums[b]) + ", expected " +
                                std::to_string(want));
  }
}

void thread_indexing() {
  const dim3 grid(3, 2, 2), block(8, 4, 3);  // 96 threads: three warps per block
  std::vector<uint4> out(3 * 2 * 2 * 96);
  thread_coordinates(out.data(), grid, block, nullptr);
  std::size_t i = 0;
  for (unsigned bz = 0; bz < 2; ++bz)
    for (unsigned by = 0; by < 2; ++by)
      for (unsigned bx = 0; bx < 3; ++bx)
        for (unsigned tz = 0; tz < 3; ++tz)
          for (unsigned ty = 0; ty < 4; ++ty)
            for (unsigned tx = 0; tx < 8; ++tx, ++i) {
              const unsigned linear = tx + 8 * (ty + 4 * tz);
              const uint4 got = out[i];
              expect(got.x == (bx | by << 8 | bz << 16) && got.y == (tx | ty << 8 | tz << 16) &&
                         got.z == linear / 32 && got.w == linear % 32,
                     "thread record " + std::to_string(i) + " is wrong");
            }
}

// The emulated GPU has 4 SMs (simt::Config::multiprocessors).
void multiprocessor_count() {
  std::vector<unsigned> out(8);
  one_block_per_multiprocessor(out.data(), nullptr);
  expect_equal(out, {4, 4, 4, 4, 0, 0, 0, 0}, "gridDim.x in a grid of multiprocessor_count() blocks");
}

// Runs the barrier-less kernel under a schedule and says whether it happened to compute out[i] = in[i-1].
bool shift_right_is_correct(simt::Schedule schedule, uint64_t seed, int salt) {
  simt::Config config = simt::config();
  config.schedule = schedule;
  config.seed = seed;
  simt::set_config(config);
  // Fresh values every run: static shared memory keeps what the previous launch left in it.
  const int blocks = 4;
  const std::vector<int> in = ints(128 * blocks, 1000 * salt);
  std::vector<int> out(in.size());
  shift_right_without_barrier(in.data(), out.data(), blocks, nullptr);
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (out[i] != in[i % 128 == 0 ? i : i - 1]) return false;
  }
  return true;
}

void missing_barrier() {
  expect(shift_right_is_correct(simt::Schedule::forward, 0, 1), "the forward schedule should hide the bug");
  expect(!shift_right_is_correct(simt::Schedule::reversed, 0, 2), "the reversed schedule should expose the bug");
  for (uint64_t seed : {1, 2, 3}) {
    expect(!shift_right_is_correct(simt::Schedule::random, seed, 3 + static_cast<int>(seed)),
           "random schedule " + std::to_string(seed) + " should expose the bug");
  }
}

// For ThreadSanitizer: one launch of the racy kernel, whose race TSan must report.
void missing_barrier_once() {
  const std::vector<int> in = ints(256);
  std::vector<int> out(in.size());
  shift_right_without_barrier(in.data(), out.data(), 2, nullptr);
}

void warp_reductions() {
  const int n = 512;
  const std::vector<int> in = ints(n);
  std::vector<int> sums(n / 32);
  warp_sum_down(in.data(), sums.data(), n, nullptr);
  std::vector<double> in_d(n), sums_d(n), want_d(n);
  for (int i = 0; i < n; ++i) in_d[i] = 0.5 * in[i];
  warp_sum_xor(in_d.data(), sums_d.data(), n, nullptr);
  std::vector<int> want(n / 32);
  for (int i = 0; i < n; ++i) want[i / 32] += in[i];
  for (int i = 0; i < n; ++i) want_d[i] = 0.5 * want[i / 32];
  expect_equal(sums, want, "__shfl_down_sync warp sums");
  expect_equal(sums_d, want_d, "__shfl_xor_sync warp sums");
}

// The CUDA rules, spelled out per lane (l = lane, s = start of l's segment of `width` lanes).
void shuffle_semantics() {
  const int n = 64;
  std::vector<int> in(n), out(6 * n);
  for (int i = 0; i < n; ++i) in[i] = 1000 + i;
  shuffle_flavours(in.data(), out.data(), n, nullptr);
  std::vector<int> want(6 * n);
  for (int i = 0; i < n; ++i) {
    const int warp = i - i % 32, l = i % 32;
    const auto value = [&](int lane) { return in[warp + lane]; };
    const auto seg = [&](int width) { return l - l % width; };
    want[0 * n + i] = value(seg(16) + 3);                          // srcLane within the segment
    want[1 * n + i] = value(seg(16) + 19 % 16);                    // srcLane taken modulo width
    want[2 * n + i] = l % 8 >= 2 ? value(l - 2) : value(l);         // below the segment: own value
    want[3 * n + i] = l % 16 + 4 < 16 ? value(l + 4) : value(l);    // past the segment: own value
    want[4 * n + i] = (l ^ 8) < seg(8) + 8 ? value(l ^ 8) : value(l);  // xor may reach earlier segments only
    want[5 * n + i] = l < 16 ? (l + 1 < 16 ? value(l + 1) : value(l)) : -1;  // a 16-lane mask
  }
  expect_equal(out, want, "shuffle results (row = flavour * 64 + thread)");

  std::vector<__half> in_h(n), out_h(n);
  for (int i = 0; i < n; ++i) in_h[i] = __float2half(0.25f * i);
  broadcast_half(in_h.data(), out_h.data(), n, nullptr);
  for (int i = 0; i < n; ++i) {
    expect(__half2float(out_h[i]) == 0.25f * (i - i % 32), "__half broadcast at " + std::to_string(i));
  }
}

void warp_votes() {
  const int n = 64;
  std::vector<int> flags(n, 1);
  flags[40] = 0;  // warp 1 has one lane without the flag; warp 0 has all
  std::vector<unsigned> ballots(n);
  std::vector<int> any(n), all(n);
  votes(flags.data(), ballots.data(), any.data(), all.data(), n, nullptr);
  unsigned every_third = 0;
  for (int l = 0; l < 32; l += 3) every_third |= 1u << l;
  for (int i = 0; i < n; ++i) {
    expect(ballots[i] == every_third, "__ballot_sync at " + std::to_string(i));
    expect(any[i] == 1, "__any_sync at " + std::to_string(i));
    expect(all[i] == (i < 32), "__all_sync at " + std::to_string(i));
  }
}

void syncwarp_orders_shared_memory() {
  const std::vector<int> in = ints(64);
  std::vector<int> out(64), want(64);
  rotate_within_warp(in.data(), out.data(), nullptr);
  for (int i = 0; i < 64; ++i) want[i] = in[i - i % 32 + (i + 1) % 32];
  expect_equal(out, want, "rotation within warps");
}

void dynamic_shared_memory() {
  const int n = 6 * 96;
  std::vector<float> in(n), out(n);
  std::vector<double> in_d(n), out_d(n);
  for (int i = 0; i < n; ++i) in_d[i] = in[i] = static_cast<float>(i);
  reverse_each_block_float(in.data(), out.data(), n, 96, nullptr);
  reverse_each_block_double(in_d.data(), out_d.data(), n, 48, nullptr);
  for (int i = 0; i < n; ++i) {
    expect(out[i] == in[i - i % 96 + 95 - i % 96], "float reversal at " + std::to_string(i));
    expect(out_d[i] == in_d[i - i % 48 + 47 - i % 48], "double reversal at " + std::to_string(i));
  }
  // More than a GPU block can have (227 KiB on sm_90) fails at launch, as on hardware.
  expect_simt_error(
      [] { simt::launch(reverse_each_block_kernel<float>, dim3(1), dim3(1), 228 * 1024, nullptr, nullptr, nullptr); },
      {"233472 bytes of dynamic shared memory", "at most 232448"});
  // simt::ld_shared/st_shared (and cp.async, ldmatrix) past either end of the allocation are out of
  // bounds, a guard's width away too, as compute-sanitizer reports them; the last float is not.
  float stored = 0;
  simt::launch(shared_store_at_kernel, dim3(1), dim3(1), 64 * sizeof(float), nullptr, 63, &stored);
  expect(stored == 1.0f, "the last float of the allocation");
  for (int index : {64, -1, 4000}) {
    expect_simt_error([&] { simt::launch(shared_store_at_kernel, dim3(1), dim3(1), 64 * sizeof(float), nullptr, index,
                                         &stored); },
                      {"a shared-memory store of 4 bytes at byte offset " + std::to_string(4 * index),
                       "256 bytes of dynamic shared memory: out of bounds"});
  }
}

void atomic_add() {
  simt::Config config = simt::config();
  config.block_threads = 4;  // blocks really run concurrently, even on a small machine
  simt::set_config(config);
  const int blocks = 64, threads = 128, total = blocks * threads;
  int next_ticket = 0;
  std::vector<int> taken(total);
  unsigned sum_u = 0;
  unsigned long long sum_ull = 0;
  float sum_f = 0;
  double sum_d = 0;
  __half sum_h = __float2half(0.0f);
  __nv_bfloat16 sum_bf = __float2bfloat16(0.0f);
  tickets_and_sums(&next_ticket, taken.data(), &sum_u, &sum_ull, &sum_f, &sum_d, &sum_h, &sum_bf, blocks, threads,
                   nullptr);
  expect(next_ticket == total, "int: " + std::to_string(next_ticket) + " tickets");
  expect_equal(taken, std::vector<int>(total, 1), "each ticket taken once");
  expect(sum_u == 2u * total && sum_ull == 3ull * total, "unsigned sums");
  expect(sum_f == 0.5f * total && sum_d == 0.25 * total, "float/double sums");
  expect(__half2float(sum_h) == blocks && __bfloat162float(sum_bf) == blocks, "half/bfloat16 sums");
}

template <class T, class FromFloat, class ToFloat, class Run>
void check_axpy_and_dot(FromFloat from_float, ToFloat to_float, Run run, float tolerance, const char* type) {
  const int n = 200;
  std::vector<T> x(n), y(n);
  std::vector<float> want_y(n);
  float want_dot = 0;
  for (int i = 0; i < n; ++i) {
    x[i] = from_float(0.01f * (i % 50));
    y[i] = from_float(1.0f - 0.005f * i);
    want_y[i] = 1.5f * to_float(x[i]) + to_float(y[i]);
    want_dot += to_float(x[i]) * to_float(y[i]);
  }
  float dot = 0;
  run(from_float(1.5f), x.data(), y.data(), &dot, n, nullptr);
  for (int i = 0; i < n; ++i) {
    expect(std::fabs(to_float(y[i]) - want_y[i]) <= tolerance * std::fabs(want_y[i]) + 1e-3f,
           std::string(type) + " axpy at " + std::to_string(i));
  }
  expect(std::fabs(dot - want_dot) <= tolerance * std::fabs(want_dot), std::string(type) + " dot");
}

void half_and_bfloat16() {
  check_axpy_and_dot<__half>([](float f) { return __float2half(f); }, [](__half h) { return __half2float(h); },
                             axpy_and_dot_half, 1e-3f, "__half");
  check_axpy_and_dot<__nv_bfloat16>([](float f) { return __float2bfloat16(f); },
                                    [](__nv_bfloat16 b) { return __bfloat162float(b); }, axpy_and_dot_bf16, 1e-2f,
                                    "__nv_bfloat16");
}

void deadlock_barrier_after_exit() {
  std::vector<int> out(64);
  expect_simt_error([&] { barrier_after_early_exit(out.data(), nullptr); },
                    {"deadlock", "lanes 0-31 exited", "wait in __syncthreads"});
}

void deadlock_shuffle_with_absent_lanes() {
  std::vector<int> out(64);
  expect_simt_error([&] { shuffle_with_absent_lanes(out.data(), nullptr); },
                    {"deadlock", "lanes 0-15 wait in __shfl_down_sync with mask 0xffffffff",
                     "lanes 16-31 wait in __syncthreads"});
}

void mismatched_collectives_is_an_error() {
  std::vector<int> out(32);
  expect_simt_error([&] { mismatched_collectives(out.data(), nullptr); },
                    {"lane 0 is in __syncwarp but lane 16 is in __shfl_sync", "must call the same collective"});
}

void mask_excludes_caller_is_an_error() {
  std::vector<int> out(32);
  expect_simt_error([&] { mask_excludes_caller(out.data(), nullptr); }, {"thread 0 (lane 0) called __shfl_sync with a mask that excludes it"});
}

// The counters of the launches `run` makes, in a session of their own.
std::map<std::string, simt::KernelCounters> counted(const std::function<void()>& run) {
  simt::begin_counting();
  try {
    run();
  } catch (...) {
    simt::end_counting();
    throw;
  }
  return simt::end_counting();
}

void expect_count(uint64_t got, uint64_t want, const std::string& what) {
  expect(got == want, what + " is " + std::to_string(got) + ", expected " + std::to_string(want));
}

// Device memory is at least 256-byte aligned; so are these buffers, so that sectors count as there.
struct alignas(256) Floats {
  float v[256] = {};
};

void counters_coalescing() {
  Floats in, out;
  for (const int stride : {1, 8}) {
    const auto totals = counted([&] { launch_strided_copy(in.v, out.v, stride); });
    expect(totals.size() == 1 && totals.count("strided_copy"), "one kernel named strided_copy");
    const simt::KernelCounters& c = totals.at("strided_copy");
    const std::string at = " at stride " + std::to_string(stride);
    expect_count(c.launches, 1, "launches" + at);
    expect_count(c.global_load_requests, 1, "load requests" + at);
    expect_count(c.global_load_sectors, stride == 1 ? 4 : 32, "load sectors" + at);
    expect_count(c.global_store_requests, 1, "store requests" + at);
    expect_count(c.global_store_sectors, 4, "store sectors" + at);
  }
}

// An instruction whose upper 16 lanes move nothing (as a zero-filling cp.async would note them):
// emulator-only, so defined here rather than in counters.cuh.
__global__ void half_warp_moves_nothing(const float* in) {
  const unsigned lane = threadIdx.x;
  simt::detail::note_access(simt::detail::MemorySpace::global, simt::detail::AccessKind::load, in + lane,
                            lane < 16 ? 4 : 0);
}

void counters_lanes_that_move_nothing() {
  Floats in;
  const auto totals = counted([&] { simt::launch(half_warp_moves_nothing, dim3(1), dim3(32), 0, nullptr, in.v); });
  const simt::KernelCounters& c = totals.at("half_warp_moves_nothing");
  expect_count(c.global_load_requests, 1, "requests with 16 lanes moving nothing");
  expect_count(c.global_load_sectors, 2, "sectors of 16 coalesced floats");
}

void counters_bank_conflicts() {
  std::vector<float> out(32);
  for (const bool padded : {false, true}) {
    const auto totals = counted([&] { launch_tile_column(out.data(), padded); });
    const simt::KernelCounters& c = totals.at(padded ? "tile_column<33>" : "tile_column<32>");
    const std::string at = padded ? " of the padded tile" : " of the unpadded tile";
    expect_count(c.shared_store_requests, 1, "shared store requests" + at);
    expect_count(c.shared_store_wavefronts, padded ? 1 : 32, "shared store wavefronts" + at);
    expect_count(c.shared_load_requests, 1, "shared load requests" + at);
    expect_count(c.shared_load_wavefronts, padded ? 1 : 32, "shared load wavefronts" + at);
    expect_count(c.shared_bank_conflicts, padded ? 0 : 2 * 31, "bank conflicts" + at);
  }
  const auto totals = counted([&] { launch_vector_and_broadcast(out.data()); });
  const simt::KernelCounters& c = totals.at("vector_and_broadcast");
  expect_count(c.shared_store_requests, 1, "128-bit shared store requests");
  expect_count(c.shared_store_wavefronts, 4, "128-bit shared store wavefronts");
  expect_count(c.shared_load_requests, 2, "shared load requests (128-bit, then broadcast)");
  expect_count(c.shared_load_wavefronts, 4 + 1, "shared load wavefronts (128-bit, then broadcast)");
  expect_count(c.shared_bank_conflicts, 0, "bank conflicts of 128-bit vectors and a broadcast");
  const auto wide = counted([&] { launch_wide_shared_reads(out.data()); }).at("wide_shared_reads");
  expect_count(wide.shared_load_requests, 2, "shared load requests (64-bit, then strided 128-bit)");
  expect_count(wide.shared_load_wavefronts, 2 + 8, "shared load wavefronts (64-bit, then strided 128-bit)");
  expect_count(wide.shared_bank_conflicts, 4, "bank conflicts of the strided 128-bit reads");
}

void counters_loop_trips() {
  std::vector<float> out(32);
  for (const bool named : {true, false}) {
    const auto totals = counted([&] { launch_uneven_rows(out.data(), named); });
    const simt::KernelCounters& c = totals.at(named ? "uneven_rows<true>" : "uneven_rows<false>");
    const std::string how = named ? " with named trips" : " without";
    expect_count(c.shared_store_requests, 6, "shared store requests" + how);
    expect_count(c.shared_bank_conflicts, named ? 0 : 2, "bank conflicts" + how);
  }
}

void counters_barriers_and_fma() {
  const int blocks = 6, threads = 96;
  std::vector<float> out(blocks * threads);
  simt::Config config = simt::config();
  config.block_threads = 3;  // blocks counted on several OS threads at once
  simt::set_config(config);
  const auto totals = counted([&] { launch_barriers_and_fma(out.data(), blocks, threads); });
  const simt::KernelCounters& c = totals.at("barriers_and_fma");
  expect_count(c.barriers, 3 * blocks, "barriers");
  expect_count(c.ffma, 5 * blocks * threads, "ffma");
  expect_count(c.dfma, 2 * blocks * threads, "dfma");
  expect_count(c.mma_1684 + c.mma_1688 + c.mma_16816, 0, "mma");
}

void counters_off_outside_a_session() {
  std::vector<float> in(32), out(32);
  launch_strided_copy(in.data(), out.data(), 1);  // not counted: no session
  simt::begin_counting();
  const bool nested_fails = [] {
    try {
      simt::begin_counting();
    } catch (const simt::Error& e) {
      return std::string(e.what()).find("already active") != std::string::npos;
    }
    return false;
  }();
  const auto totals = simt::end_counting();
  expect(totals.empty(), "a launch before the session was counted");
  expect(nested_fails, "a nested session did not fail with 'already active'");
  expect_simt_error([] { simt::end_counting(); }, {"no counter session is active"});
}

// ---- cp.async ----

void cp_async_forms() {
  std::vector<unsigned char> src(256);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<unsigned char>(i + 1);
  // {.cg?, bytes, src-size, source offset}: whole copies, partial sources that zero-fill the rest,
  // and src-size 0, a pure zero fill.
  const std::vector<CopyForm> forms = {
      {0, 4, 4, 16},  {0, 8, 8, 32},  {0, 16, 16, 48}, {1, 16, 16, 64}, {0, 16, 5, 80},
      {0, 8, 3, 96},  {0, 4, 1, 112}, {0, 4, 0, 128},  {1, 16, 0, 144}, {1, 16, 9, 160},
  };
  const int threads = static_cast<int>(forms.size());
  std::vector<unsigned char> out(16 * threads);
  copy_forms(forms.data(), src.data(), out.data(), threads, nullptr);
  for (int t = 0; t < threads; ++t) {
    const CopyForm& f = forms[t];
    for (int b = 0; b < 16; ++b) {
      const int want = b < f.src_size ? src[f.src_offset + b] : b < f.bytes ? 0 : 0xab;
      expect(out[16 * t + b] == want, "copy " + std::to_string(t) + " (" + (f.cache_global ? ".cg " : ".ca ") +
                                          std::to_string(f.bytes) + " bytes, src-size " +
                                          std::to_string(f.src_size) + "): byte " + std::to_string(b) + " is " +
                                          std::to_string(out[16 * t + b]) + ", expected " + std::to_string(want));
    }
  }
}

// wait_group N leaves the N newest groups pending: under the forward schedule (no early landing)
// they still hold the old value; under any schedule the older groups have landed.
void cp_async_wait_group() {
  std::vector<int> src(96), out(9 * 32);
  std::iota(src.begin(), src.end(), 100);
  staged_groups(src.data(), out.data(), nullptr);
  const bool early_landing_possible = simt::config().schedule == simt::Schedule::random;
  for (int t = 0; t < 32; ++t) {
    for (int w = 0; w < 3; ++w) {  // after wait_group 2 - w, groups 0..w have landed
      for (int g = 0; g < 3; ++g) {
        const int got = out[9 * t + 3 * w + g];
        const std::string where = "thread " + std::to_string(t) + ", group " + std::to_string(g) +
                                  " after wait_group " + std::to_string(2 - w);
        if (g <= w) {
          expect(got == src[32 * g + t], where + ": not landed");
        } else if (!early_landing_possible) {
          expect(got == -1, where + ": landed before its wait");
        } else {
          expect(got == -1 || got == src[32 * g + t], where + ": neither old nor copied");
        }
      }
    }
  }
}

// Runs a reversal through cp.async under a schedule; says whether every element came out right,
// and counts the elements that did.
template <bool kWait, bool kBarrier>
bool reversal_is_correct(simt::Schedule schedule, uint64_t seed, int* right = nullptr) {
  simt::Config config = simt::config();
  config.schedule = schedule;
  config.seed = seed;
  simt::set_config(config);
  const int blocks = 2;
  std::vector<int> in(128 * blocks), out(in.size());
  std::iota(in.begin(), in.end(), 1000);  // never -1, the value of shared memory no copy reached
  reverse_through_cp_async<kWait, kBarrier>(in.data(), out.data(), blocks, nullptr);
  int count = 0;
  for (std::size_t i = 0; i < in.size(); ++i) count += out[i] == in[i - i % 128 + 127 - i % 128];
  if (right != nullptr) *right = count;
  return count == static_cast<int>(in.size());
}

const std::vector<std::pair<simt::Schedule, uint64_t>> kSchedules = {
    {simt::Schedule::forward, 0}, {simt::Schedule::reversed, 0}, {simt::Schedule::random, 1},
    {simt::Schedule::random, 2},  {simt::Schedule::random, 3},
};

void cp_async_with_wait_and_barrier() {
  for (const auto& [schedule, seed] : kSchedules) {
    expect(reversal_is_correct<true, true>(schedule, seed), "the correct kernel failed under a schedule");
  }
}

void cp_async_missing_wait() {
  for (const auto& [schedule, seed] : kSchedules) {
    expect(!reversal_is_correct<false, true>(schedule, seed),
           "a kernel without cp.async.wait_group read landed data under schedule " +
               std::to_string(static_cast<int>(schedule)) + ", seed " + std::to_string(seed));
  }
}

void cp_async_missing_barrier() {
  for (const auto& [schedule, seed] : kSchedules) {
    expect(!reversal_is_correct<true, false>(schedule, seed),
           "a kernel without __syncthreads after its wait read other threads' copies under schedule " +
               std::to_string(static_cast<int>(schedule)) + ", seed " + std::to_string(seed));
  }
}

// The random schedule lands some copies before their wait (and not others): a kernel missing its
// wait then reads a mixture.
void cp_async_random_early_landing() {
  int right = 0;
  reversal_is_correct<false, true>(simt::Schedule::random, 5, &right);
  expect(right > 0 && right < 256, std::to_string(right) + " of 256 elements landed before the wait; expected some");
  reversal_is_correct<false, true>(simt::Schedule::forward, 0, &right);
  expect(right == 0, "under the forward schedule no copy may land before its wait");
}

// ---- planted errors ----

std::string planted() {
  const char* plant = std::getenv("SIMT_TEST_PLANT");
  return plant != nullptr ? plant : "";
}

// ---- ldmatrix ----

// Element (matrix i, row r, col c) of the loaded matrices: distinct, and never 0xffff.
uint16_t matrix_element(int i, int r, int c) { return static_cast<uint16_t>(0x1000 * (i + 1) + 16 * r + c); }

template <int kMatrices, bool kTransposed>
void ldmatrix_layout() {
  // Rows 24 elements (48 bytes) apart, the matrices in reverse order: addresses matter, not layout.
  std::vector<uint16_t> arena(kMatrixArena, 0xffff);
  std::vector<int> row_of_lane(32);
  for (int lane = 0; lane < 32; ++lane) {
    const int i = lane / 8 % kMatrices, r = lane % 8;  // lanes past 8*kMatrices name ignored rows
    row_of_lane[lane] = 24 * (8 * (kMatrices - 1 - i) + r);
    if (lane < 8 * kMatrices) {
      for (int c = 0; c < 8; ++c) arena[row_of_lane[lane] + c] = matrix_element(i, r, c);
    }
  }
  const FragmentPlant plant = planted() == "swap_registers" ? FragmentPlant::swap_registers : FragmentPlant::none;
  std::vector<uint32_t> out(32 * kMatrices);
  load_matrices<kMatrices, kTransposed>(arena.data(), row_of_lane.data(), out.data(), plant, nullptr);
  for (int lane = 0; lane < 32; ++lane) {
    const LdmatrixPlace place = kLdmatrixPlaces[lane];
    for (int i = 0; i < kMatrices; ++i) {
      for (int half = 0; half < 2; ++half) {
        const uint16_t want = kTransposed ? matrix_element(i, place.col + half, place.row)
                                          : matrix_element(i, place.row, place.col + half);
        const uint16_t got = static_cast<uint16_t>(out[kMatrices * lane + i] >> (16 * half));
        expect(got == want, std::string(kTransposed ? "ldmatrix.trans" : "ldmatrix") + ".x" +
                                std::to_string(kMatrices) + ": lane " + std::to_string(lane) + " register " +
                                std::to_string(i) + " half " + std::to_string(half) + " is " + std::to_string(got) +
                                ", expected " + std::to_string(want));
      }
    }
  }
}

// ---- mma ----

// The 16 bits (f16, bf16) or 32 bits (tf32) of a float that is exact in the operand type.
template <simt::MmaOperand kType>
uint32_t operand_bits(float value) {
  if constexpr (kType == simt::MmaOperand::f16) {
    return static_cast<__half_raw>(__float2half(value)).x;
  } else if constexpr (kType == simt::MmaOperand::bf16) {
    return static_cast<__nv_bfloat16_raw>(__float2bfloat16(value)).x;
  } else {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
  }
}

// `value` rounded to the operand type (tf32: truncated to its 10 mantissa bits).
template <simt::MmaOperand kType>
float representable(float value) {
  if constexpr (kType == simt::MmaOperand::f16) {
    return __half2float(__float2half(value));
  } else if constexpr (kType == simt::MmaOperand::bf16) {
    return __bfloat162float(__float2bfloat16(value));
  } else {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    bits &= 0xffffe000u;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }
}

// Packs one operand matrix (rows x cols, row-major) into each lane's registers by a PTX table.
template <simt::MmaOperand kType, int kElements>
std::vector<uint32_t> pack(const std::vector<float>& matrix, int cols, const FragmentPlace (&table)[kElements]) {
  constexpr int kPack = kType == simt::MmaOperand::tf32 ? 1 : 2;
  constexpr int kRegisters = kElements / kPack;
  std::vector<uint32_t> registers(32 * kRegisters, 0);
  for (int lane = 0; lane < 32; ++lane) {
    for (int e = 0; e < kElements; ++e) {
      const uint32_t bits = operand_bits<kType>(matrix[table[e].row(lane) * cols + table[e].col(lane)]);
      registers[kRegisters * lane + e / kPack] |= bits << (16 * (e % kPack));
    }
  }
  return registers;
}

// D = A B + C for one warp with fragments packed by the PTX tables, against a float64 product.
// `exact`: small integers, where any misplaced element changes the result; otherwise fractions,
// compared within float accumulation error.
template <simt::MmaOperand kType, int kK, int kElementsA, int kElementsB>
void check_mma(const FragmentPlace (&table_a)[kElementsA], const FragmentPlace (&table_b)[kElementsB], bool exact,
               const std::string& name) {
  std::vector<float> a(16 * kK), b(kK * 8), c(16 * 8);
  uint64_t state = 12345;
  const auto draw = [&](int i) {
    if (exact) return static_cast<float>((i * 7 + 3) % 11 - 5);
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<int>(state >> 40) % 2001 - 1000) / 997.0f;
  };
  for (int i = 0; i < 16 * kK; ++i) a[i] = representable<kType>(draw(i));
  for (int i = 0; i < kK * 8; ++i) b[i] = representable<kType>(draw(3 * i + 1));
  for (int i = 0; i < 16 * 8; ++i) c[i] = draw(5 * i + 2);
  const std::vector<uint32_t> a_regs = pack<kType>(a, kK, table_a), b_regs = pack<kType>(b, 8, table_b);
  std::vector<float> c_regs(32 * 4), d_regs(32 * 4);
  for (int lane = 0; lane < 32; ++lane) {
    for (int e = 0; e < 4; ++e) c_regs[4 * lane + e] = c[kC_m16n8[e].row(lane) * 8 + kC_m16n8[e].col(lane)];
  }
  const std::string plant = planted();
  const MmaPlant mma_plant = plant == "swap_a"   ? MmaPlant::swap_a
                             : plant == "swap_b" ? MmaPlant::swap_b
                             : plant == "swap_c" ? MmaPlant::swap_c
                                                 : MmaPlant::none;
  multiply_fragments<kType, kK>(a_regs.data(), b_regs.data(), c_regs.data(), d_regs.data(), mma_plant, nullptr);
  for (int lane = 0; lane < 32; ++lane) {
    for (int e = 0; e < 4; ++e) {
      const int row = kC_m16n8[e].row(lane), col = kC_m16n8[e].col(lane);
      double want = c[row * 8 + col], magnitude = std::fabs(want);
      for (int k = 0; k < kK; ++k) {
        want += double{a[row * kK + k]} * b[k * 8 + col];
        magnitude += std::fabs(double{a[row * kK + k]} * b[k * 8 + col]);
      }
      const double got = d_regs[4 * lane + e];
      const double tolerance = exact ? 0.0 : 1e-6 * magnitude;
      expect(std::fabs(got - want) <= tolerance,
             name + (exact ? " (integers)" : " (fractions)") + ": lane " + std::to_string(lane) + " d" +
                 std::to_string(e) + " = D[" + std::to_string(row) + "][" + std::to_string(col) + "] is " +
                 std::to_string(got) + ", expected " + std::to_string(want));
    }
  }
}

template <simt::MmaOperand kType, int kK, int kElementsA, int kElementsB>
void mma_layout(const FragmentPlace (&table_a)[kElementsA], const FragmentPlace (&table_b)[kElementsB],
                const std::string& name) {
  check_mma<kType, kK>(table_a, table_b, true, name);
  check_mma<kType, kK>(table_a, table_b, false, name);
}

void mma_m16n8k16_f16() { mma_layout<simt::MmaOperand::f16, 16>(kA_m16n8k16_f16, kB_m16n8k16_f16, "m16n8k16.f16"); }
void mma_m16n8k16_bf16() {
  mma_layout<simt::MmaOperand::bf16, 16>(kA_m16n8k16_f16, kB_m16n8k16_f16, "m16n8k16.bf16");
}
void mma_m16n8k8_f16() { mma_layout<simt::MmaOperand::f16, 8>(kA_m16n8k8_f16, kB_m16n8k8_f16, "m16n8k8.f16"); }
void mma_m16n8k8_bf16() { mma_layout<simt::MmaOperand::bf16, 8>(kA_m16n8k8_f16, kB_m16n8k8_f16, "m16n8k8.bf16"); }
void mma_m16n8k8_tf32() { mma_layout<simt::MmaOperand::tf32, 8>(kA_m16n8k8_tf32, kB_m16n8k8_tf32, "m16n8k8.tf32"); }
void mma_m16n8k4_tf32() { mma_layout<simt::MmaOperand::tf32, 4>(kA_m16n8k4_tf32, kB_m16n8k4_tf32, "m16n8k4.tf32"); }

// ---- mbarrier ----

// After each step of mbarrier_steps_kernel, whether the phases of parity 0 and 1 count as
// completed. PTX ISA: a phase completes once its pending arrival count and its tx-count are both
// zero; then the next phase starts with the count given to init; a test_wait.parity for the parity
// of the phase before the current one succeeds.
constexpr int kMbarrierStepsWant[kMbarrierSteps][2] = {
    {0, 1},  // init(2): phase 0 current
    {0, 1},  // arrive: 1 of 2 pending
    {1, 0},  // arrive: phase 0 completes, phase 1 current
    {1, 0},  // arrive.expect_tx(48): 1 pending, tx-count 48
    {1, 0},  // arrive: none pending, but tx-count 48
    {1, 0},  // complete_tx(32): tx-count 16
    {0, 1},  // complete_tx(16): phase 1 completes, phase 2 (parity 0) current
    {0, 1},  // complete_tx(8): tx-count -8, bytes before their announcement
    {0, 1},  // expect_tx(8): tx-count 0, still 2 arrivals pending
    {1, 0},  // arrive, arrive: phase 2 completes
};

void mbarrier_phases() {
  std::vector<int> out(2 * kMbarrierSteps, -1);
  mbarrier_steps(out.data(), nullptr);
  for (int step = 0; step < kMbarrierSteps; ++step) {
    for (int parity = 0; parity < 2; ++parity) {
      const int got = out[2 * step + parity], want = kMbarrierStepsWant[step][parity];
      expect(got == want, "step " + std::to_string(step) + ": test_wait.parity " + std::to_string(parity) + " is " +
                              std::to_string(got) + ", expected " + std::to_string(want));
    }
  }
}

void run_pipeline(PipelinePlant plant) {
  std::vector<int> in(96 * kPipelineRounds), out(in.size(), -2);
  std::iota(in.begin(), in.end(), 0);  // never -1, the value of a stage nobody wrote
  mbarrier_pipeline(in.data(), out.data(), plant, nullptr);
  expect_equal(out, in, "pipeline output");
}

void mbarrier_pipeline() {
  run_pipeline(planted() == "wrong_parity" ? PipelinePlant::wrong_parity : PipelinePlant::none);
}

void mbarrier_deadlock_missing_arrival() {
  expect_simt_error([] { run_pipeline(PipelinePlant::missing_arrival); },
                    {"deadlock", "lanes 0-31 exited", "wait for the phase of parity 1 of mbarrier",
                     "1 of 32 arrivals pending, tx-count 0"});
}

void mbarrier_misuse_is_an_error() {
  const std::vector<std::pair<MbarrierMisuse, std::string>> misuses = {
      {MbarrierMisuse::uninitialised, "mbarrier.arrive on mbarrier at"},
      {MbarrierMisuse::after_inval, "which is not an initialised mbarrier"},
      {MbarrierMisuse::too_many_arrivals, "1 arrival(s) where 0 are pending"},
      {MbarrierMisuse::zero_count, "with count 0"},
      {MbarrierMisuse::misaligned, "an mbarrier is 8-byte aligned"},
      {MbarrierMisuse::tx_overflow, "takes its tx-count to 1048576, outside the range"},
  };
  for (const auto& [misuse, fragment] : misuses) {
    expect_simt_error([misuse = misuse] { mbarrier_misuse(misuse, nullptr); }, {fragment});
  }
}

// ---- cp.async.bulk ----

template <bool kWait>
bool bulk_copy_is_correct(simt::Schedule schedule, uint64_t seed) {
  simt::Config config = simt::config();
  config.schedule = schedule;
  config.seed = seed;
  simt::set_config(config);
  std::vector<int> in(kBulkInts), out(kBulkInts);
  std::iota(in.begin(), in.end(), 1000);  // never -1, the value of shared memory no copy reached
  bulk_copy<kWait>(in.data(), out.data(), 0, nullptr);
  return out == in;
}

void bulk_copy_through_mbarrier() {
  std::vector<int> in(kBulkInts), out(kBulkInts);
  std::iota(in.begin(), in.end(), 1000);
  bulk_copy<true>(in.data(), out.data(), 0, nullptr);
  expect_equal(out, in, "bulk copy");
}

void bulk_copy_missing_wait() {
  for (const auto& [schedule, seed] : kSchedules) {
    expect(!bulk_copy_is_correct<false>(schedule, seed),
           "a kernel that does not wait on the mbarrier read landed bulk copies under schedule " +
               std::to_string(static_cast<int>(schedule)) + ", seed " + std::to_string(seed));
  }
}

void bulk_copy_expect_tx_never_completes() {
  std::vector<int> in(kBulkInts), out(kBulkInts);
  expect_simt_error([&] { bulk_copy<true>(in.data(), out.data(), 16, nullptr); },
                    {"deadlock", "lanes 0-31 wait for the phase of parity 0 of mbarrier",
                     "0 of 32 arrivals pending, tx-count 16"});
}

void bulk_copy_size_is_an_error() {
  std::vector<int> in(4);
  expect_simt_error([&] { bulk_copy_range(reinterpret_cast<const unsigned char*>(in.data()), 12, nullptr); },
                    {"cp.async.bulk of 12 bytes", "multiple of 16"});
}

// ---- cp.async.bulk.tensor ----

// A 40 x 20 bf16 tensor (rows 96 bytes apart: 8 elements of padding), every element distinct.
constexpr int kTensorWidth = 40, kTensorHeight = 20, kTensorPitch = 48;
uint16_t tensor_element(int x, int y) { return static_cast<uint16_t>(0x1000 + 64 * y + x); }

CUtensorMapSwizzle tensor_map_swizzle(unsigned mode) {
  switch (mode) {
    case 1: return CU_TENSOR_MAP_SWIZZLE_128B;
    case 2: return CU_TENSOR_MAP_SWIZZLE_64B;
    case 3: return CU_TENSOR_MAP_SWIZZLE_32B;
    default: return CU_TENSOR_MAP_SWIZZLE_NONE;
  }
}

// A bf16 tensor of width x height elements, rows `stride` bytes apart.
CUresult encode_2d(CUtensorMap* map, void* global, uint64_t width, uint64_t height, uint64_t stride, unsigned box_x,
                   unsigned box_y, CUtensorMapSwizzle swizzle, CUtensorMapFloatOOBfill fill) {
  const cuuint64_t dims[2] = {width, height};
  const cuuint64_t strides[1] = {stride};
  const cuuint32_t box[2] = {box_x, box_y};
  const cuuint32_t element_strides[2] = {1, 1};
  return simt::encode_tensor_map_tiled(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, global, dims, strides, box,
                                       element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
                                       CU_TENSOR_MAP_L2_PROMOTION_NONE, fill);
}

// A 32-row box at (-8, -3), so that it starts left of and above the tensor and ends below it, whose
// rows span the swizzle (128 bytes without one); 32 rows, because the first 8W bytes of W-byte rows
// swizzled with a span of 2W are those of span W. Each element must lie where the layout table puts row j's
// byte 2i: the rows one after another, 16-byte chunks permuted as for wgmma's K-major operands;
// outside the tensor, zeros (or NaN).
void check_tensor_copy(int layout_index, CUtensorMapFloatOOBfill fill) {
  const SwizzleAtom& layout = kSwizzleAtoms[layout_index];
  const int inner_bytes = layout.mode == 0 ? 128 : layout.row_pitch;
  const int box_x = inner_bytes / 2, box_y = 32, box_bytes = inner_bytes * box_y, x0 = -8, y0 = -3;
  // wrong_swizzle: none -> 128B, 32B -> 64B, 64B -> 128B, 128B -> none (each valid for the box)
  const unsigned planted_mode[4] = {1, 0, 1, 2};
  const unsigned mode = planted() == "wrong_swizzle" ? planted_mode[layout.mode] : layout.mode;
  std::vector<uint16_t> tensor(kTensorPitch * kTensorHeight, 0xeeee);  // the padding must never be copied
  for (int y = 0; y < kTensorHeight; ++y) {
    for (int x = 0; x < kTensorWidth; ++x) tensor[y * kTensorPitch + x] = tensor_element(x, y);
  }
  CUtensorMap map;
  encode_2d(&map, tensor.data(), kTensorWidth, kTensorHeight, 2 * kTensorPitch, box_x, box_y, tensor_map_swizzle(mode),
            fill);
  std::vector<unsigned char> out(box_bytes);
  tensor_copy<2>(map, {{x0, y0}}, box_bytes, 0, out.data(), nullptr);
  for (int j = 0; j < box_y; ++j) {
    for (int i = 0; i < box_x; ++i) {
      const int x = x0 + i, y = y0 + j;
      const bool inside = x >= 0 && x < kTensorWidth && y >= 0 && y < kTensorHeight;
      const uint16_t outside = fill == CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE ? 0 : 0xffff;
      const uint16_t want = inside ? tensor_element(x, y) : outside;
      const int chunk = 2 * i / 16 ^ j / layout.xor_div % layout.xor_mod;
      const int at = j * inner_bytes + chunk * 16 + 2 * i % 16;
      const uint16_t got = static_cast<uint16_t>(out[at] | out[at + 1] << 8);
      expect(got == want, std::string(layout.name) + ": box element (" + std::to_string(i) + ", " +
                              std::to_string(j) + ") at shared byte " + std::to_string(at) + " is " +
                              std::to_string(got) + ", expected " + std::to_string(want));
    }
  }
}

void tensor_map_encoding_errors() {
  std::vector<uint16_t> tensor(kTensorPitch * kTensorHeight + 8);
  CUtensorMap map;
  const auto encode = [&](void* global, uint64_t stride, unsigned box_x, unsigned box_y, CUtensorMapSwizzle swizzle) {
    return [=, &map] {
      encode_2d(&map, global, kTensorWidth, kTensorHeight, stride, box_x, box_y, swizzle,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    };
  };
  const auto swizzle_64b = CU_TENSOR_MAP_SWIZZLE_64B, none = CU_TENSOR_MAP_SWIZZLE_NONE;
  expect_simt_error(encode(tensor.data(), 96, 64, 8, swizzle_64b), {"(128 bytes) must not exceed the 64-byte"});
  expect_simt_error(encode(tensor.data(), 88, 64, 8, none), {"globalStrides[0] must be a multiple of 16"});
  expect_simt_error(encode(tensor.data() + 1, 96, 64, 8, none), {"global address must be 16-byte aligned"});
  expect_simt_error(encode(tensor.data(), 96, 12, 8, none), {"boxDim[0] times the element size"});
  expect_simt_error(encode(tensor.data(), 96, 64, 257, none), {"boxDim[1] must be 1 to 256"});
}

// A 4-D NHWC bf16 tensor (C 16, W 6, H 5, N 2, packed) read as a strided convolution reads its
// input: a box of 16 channels x 4 columns x 3 rows of image 1 from (w, h) = (-1, -1), every second
// column (element stride 2 along W: columns -1, 1, 3, 5). The box lands densely, channels innermost;
// the padding column and row are zeros.
void tensor_copy_4d_strided_window() {
  constexpr int kC = 16, kW = 6, kH = 5, kN = 2, kBoxW = 4, kBoxH = 3;
  const auto element = [](int c, int w, int h, int n) {  // distinct, never 0
    return static_cast<uint16_t>(0x1000 * (c / 8) + 0x200 * (1 + n) + 64 * h + 8 * w + c % 8);
  };
  std::vector<uint16_t> tensor(kC * kW * kH * kN);
  for (int i = 0; i < kC * kW * kH * kN; ++i) {
    tensor[i] = element(i % kC, i / kC % kW, i / (kC * kW) % kH, i / (kC * kW * kH));
  }
  const cuuint64_t dims[4] = {kC, kW, kH, kN};
  const cuuint64_t strides[3] = {2 * kC, 2 * kC * kW, 2 * kC * kW * kH};
  const cuuint32_t box[4] = {kC, 2 * kBoxW, kBoxH, 1};  // along W, 2 kBoxW elements with stride 2 give kBoxW
  const cuuint32_t element_strides[4] = {1, 2, 1, 1};
  CUtensorMap map;
  simt::encode_tensor_map_tiled(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, tensor.data(), dims, strides, box,
                                element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                                CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  const int box_bytes = 2 * kC * kBoxW * kBoxH;
  std::vector<unsigned char> out(box_bytes);
  const int w0 = planted() == "shifted_window" ? 0 : -1;
  tensor_copy<4>(map, {{0, w0, -1, 1}}, box_bytes, 0, out.data(), nullptr);
  for (int j = 0; j < kBoxH; ++j) {
    for (int i = 0; i < kBoxW; ++i) {
      for (int c = 0; c < kC; ++c) {
        const int w = -1 + 2 * i, h = -1 + j;
        const uint16_t want = w >= 0 && w < kW && h >= 0 && h < kH ? element(c, w, h, 1) : 0;
        const int at = 2 * ((j * kBoxW + i) * kC + c);
        const uint16_t got = static_cast<uint16_t>(out[at] | out[at + 1] << 8);
        expect(got == want, "channel " + std::to_string(c) + " of column " + std::to_string(w) + ", row " +
                                std::to_string(h) + " is " + std::to_string(got) + ", expected " + std::to_string(want));
      }
    }
  }
}

void tensor_copy_misaligned_destination() {
  std::vector<uint16_t> tensor(kTensorPitch * kTensorHeight);
  CUtensorMap map;
  encode_2d(&map, tensor.data(), kTensorWidth, kTensorHeight, 2 * kTensorPitch, 64, 8, CU_TENSOR_MAP_SWIZZLE_NONE,
            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  std::vector<unsigned char> out(1024);
  expect_simt_error([&] { tensor_copy<2>(map, {{0, 0}}, 1024, 16, out.data(), nullptr); },
                    {"destination must be 128-byte aligned"});
}

// ---- counters of bulk and tensor copies ----

// One instruction per copy, and the sectors its source touches: 128 aligned bytes 4, 128 bytes from
// the middle of a sector 5. Copies of 16 bytes by each lane of a warp, two to a sector, and one of
// 512 count their sectors each (32 + 16). None of it is a request.
void counters_bulk_copies() {
  Floats in;
  const auto* bytes = reinterpret_cast<const unsigned char*>(in.v);
  const struct {
    unsigned offset, bytes;
    uint64_t sectors;
  } ranges[] = {{0, 128, 4}, {16, 128, 5}, {16, 16, 1}};
  for (const auto& r : ranges) {
    const auto c = counted([&] { bulk_copy_range(bytes + r.offset, r.bytes, nullptr); }).at("bulk_copy_range_kernel");
    const std::string at = " of " + std::to_string(r.bytes) + " bytes at offset " + std::to_string(r.offset);
    expect_count(c.bulk_copies, 1, "bulk copies" + at);
    expect_count(c.bulk_copy_sectors, r.sectors, "bulk copy sectors" + at);
    expect_count(c.global_load_requests + c.global_load_sectors, 0, "global load requests and sectors" + at);
  }
  alignas(256) int ints[kBulkInts] = {};
  std::vector<int> out(kBulkInts);
  const auto c = counted([&] { bulk_copy<true>(ints, out.data(), 0, nullptr); }).at("bulk_copy_kernel<true>");
  expect_count(c.bulk_copies, 33, "bulk copies of 32 lanes and one more");
  expect_count(c.bulk_copy_sectors, 32 + 16, "bulk copy sectors of 32 lanes and one more");
}

// A box of 8 rows x 32 floats (a row one 128-byte line, 4 sectors) of a 32 x 8 float tensor, from
// row -3: the 3 rows above the tensor read nothing; from column -8, each row 3 sectors.
void counters_tensor_copy() {
  Floats tensor;
  const cuuint64_t dims[2] = {32, 8};
  const cuuint64_t strides[1] = {32 * sizeof(float)};
  const cuuint32_t box[2] = {32, 8};
  const cuuint32_t element_strides[2] = {1, 1};
  CUtensorMap map;
  simt::encode_tensor_map_tiled(&map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 2, tensor.v, dims, strides, box,
                                element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                                CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  const int box_bytes = 32 * 8 * sizeof(float);
  std::vector<unsigned char> out(box_bytes);
  for (const auto& [x0, sectors_per_row] : {std::pair{0, 4}, std::pair{-8, 3}}) {
    const auto c = counted([&] { tensor_copy<2>(map, {{x0, -3}}, box_bytes, 0, out.data(), nullptr); })
                       .at("tensor_copy_kernel<2>");
    const std::string at = " of a box at (" + std::to_string(x0) + ", -3)";
    expect_count(c.bulk_copies, 1, "bulk copies" + at);
    expect_count(c.bulk_copy_sectors, 5 * sectors_per_row, "bulk copy sectors" + at);
  }
}

// ---- wgmma ----

// The byte of an operand's image that holds element k of row r (of M or N), by the ISA's layout table.
int operand_place(const SwizzleAtom& atom, bool mn_major, int r, int k, int element_bytes, int lbo, int sbo) {
  // The atom's row and the byte in it, and where the row's 8-row group lies.
  const int row = mn_major ? k % 8 : r % 8;
  const int byte = mn_major ? r * element_bytes % (atom.mode == 0 ? 16 : atom.row_pitch) : k * element_bytes;
  const int group = mn_major ? (atom.mode == 0 ? r * element_bytes / 16 * sbo + k / 8 * lbo
                                               : r * element_bytes / atom.row_pitch * lbo + k / 8 * sbo)
                             : (atom.mode == 0 ? r / 8 * sbo + byte / 16 * lbo : r / 8 * sbo);
  const int chunk = atom.mode == 0 ? 0 : byte / 16 ^ row / atom.xor_div % atom.xor_mod;
  return group + row * atom.row_pitch + chunk * 16 + byte % 16;
}

WgmmaPlant wgmma_plant() {
  const std::string plant = planted();
  return plant == "wrong_swizzle"  ? WgmmaPlant::wrong_swizzle
         : plant == "swap_lbo_sbo" ? WgmmaPlant::swap_lbo_sbo
         : plant == "swap_d"       ? WgmmaPlant::swap_d
         : plant == "skip_wait"    ? WgmmaPlant::skip_wait
                                   : WgmmaPlant::none;
}

// D = A B + C for one warpgroup, A (64 x K) and B (K x kN) each K-major or MN-major, placed by
// `atom`, against a float64 product. The descriptors advance along K as a GEMM's would: K spans a
// whole K-major swizzled row (128B: 4 k-slices of 32 bytes, 64B: 2, 32B: 1), or 4 core matrices
// (2 k-slices) unswizzled or with both operands MN-major. Without swizzling, core matrices adjacent
// in M/N are adjacent in memory (SBO 128), those adjacent in K a whole column of them apart (LBO);
// MN-major atoms follow each other along K (SBO 8W) and, along M/N, after all of K (LBO): swapping
// LBO and SBO shows.
template <simt::MmaOperand kType, int kN, simt::WgmmaMajor kMajorA = simt::WgmmaMajor::k,
          simt::WgmmaMajor kMajorB = simt::WgmmaMajor::k>
void check_wgmma(const SwizzleAtom& atom, bool exact, WgmmaPlant plant, const std::string& name) {
  constexpr int kElementBytes = kType == simt::MmaOperand::tf32 ? 4 : 2;
  constexpr bool kAnyKMajor = kMajorA == simt::WgmmaMajor::k || kMajorB == simt::WgmmaMajor::k;
  const int k = (kAnyKMajor && atom.mode != 0 ? atom.row_pitch : 64) / kElementBytes;
  const auto place_of = [&](int rows, int offset, simt::WgmmaMajor major) {
    int lbo = 0, sbo = 0, slice_step = 0;  // slice_step: bytes per k-slice of 32 bytes
    if (major == simt::WgmmaMajor::k) {
      lbo = atom.mode == 0 ? rows / 8 * 128 : 16;  // swizzled: LBO unused
      sbo = atom.mode == 0 ? 128 : 8 * atom.row_pitch;
      slice_step = atom.mode == 0 ? 2 * lbo : 32;
    } else {  // a k-slice is 16 rows of k: 2 core matrices or atoms along K
      lbo = atom.mode == 0 ? rows * kElementBytes / 16 * 128 : k / 8 * 8 * atom.row_pitch;
      sbo = atom.mode == 0 ? 128 : 8 * atom.row_pitch;
      slice_step = 2 * (atom.mode == 0 ? lbo : sbo);
    }
    return WgmmaOperandPlace{offset, slice_step, static_cast<unsigned>(lbo), static_cast<unsigned>(sbo)};
  };
  const int a_bytes = (64 * k * kElementBytes + 1023) / 1024 * 1024;
  const WgmmaTile tile{place_of(64, 0, kMajorA), place_of(kN, a_bytes, kMajorB),
                       static_cast<simt::WgmmaSwizzle>(atom.mode), k * kElementBytes / 32};
  // 16 KiB of NaN after B: a misplaced read yields a wrong value rather than an out-of-range error.
  const int image_bytes = a_bytes + (kN * k * kElementBytes + 1023) / 1024 * 1024 + 16 * 1024;
  std::vector<unsigned char> image(image_bytes, 0xff);  // f16/bf16/tf32 NaN where no element is placed

  std::vector<float> a(64 * k), b(kN * k), c(64 * kN);
  uint64_t state = 777;
  const auto draw = [&](int i) {
    if (exact) return static_cast<float>((i * 7 + 3) % 11 - 5);
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<int>(state >> 40) % 2001 - 1000) / 997.0f;
  };
  // a[r k + e] = A[r][e], b[n k + e] = B[e][n]
  const auto place = [&](std::vector<float>& matrix, int rows, const WgmmaOperandPlace& where, bool mn_major,
                         int salt) {
    for (int r = 0; r < rows; ++r) {
      for (int e = 0; e < k; ++e) {
        matrix[r * k + e] = representable<kType>(draw(salt * (r * k + e) + salt));
        const uint32_t bits = operand_bits<kType>(matrix[r * k + e]);
        const int at = where.offset + operand_place(atom, mn_major, r, e, kElementBytes, where.lbo, where.sbo);
        std::memcpy(&image[at], &bits, kElementBytes);  // little-endian: the low bytes
      }
    }
  };
  place(a, 64, tile.a, kMajorA == simt::WgmmaMajor::mn, 1);
  place(b, kN, tile.b, kMajorB == simt::WgmmaMajor::mn, 3);
  for (int i = 0; i < 64 * kN; ++i) c[i] = draw(5 * i + 2);

  constexpr int kRegisters = kN / 2;
  const auto d_place = [](int thread, int i) {
    const FragmentPlace& p = kD_m64nN[i % 4];
    const int lane = thread % 32;
    return std::pair<int, int>{16 * (thread / 32) + p.row(lane), 8 * (i / 4) + p.col(lane)};
  };
  std::vector<float> c_regs(128 * kRegisters), d_regs(128 * kRegisters);
  for (int thread = 0; thread < 128; ++thread) {
    for (int i = 0; i < kRegisters; ++i) {
      const auto [row, col] = d_place(thread, i);
      c_regs[thread * kRegisters + i] = c[row * kN + col];
    }
  }
  warpgroup_multiply<kType, kN, kMajorA, kMajorB>(image.data(), image_bytes, tile, c_regs.data(), d_regs.data(), plant,
                                                   nullptr);
  for (int thread = 0; thread < 128; ++thread) {
    for (int i = 0; i < kRegisters; ++i) {
      const auto [row, col] = d_place(thread, i);
      double want = c[row * kN + col], magnitude = std::fabs(want);
      for (int e = 0; e < k; ++e) {
        want += double{a[row * k + e]} * b[col * k + e];
        magnitude += std::fabs(double{a[row * k + e]} * b[col * k + e]);
      }
      const double got = d_regs[thread * kRegisters + i];
      expect(std::fabs(got - want) <= (exact ? 0.0 : 1e-6 * magnitude),
             name + ", " + atom.name + (exact ? " (integers)" : " (fractions)") + ": thread " +
                 std::to_string(thread) + " d" + std::to_string(i) + " = D[" + std::to_string(row) + "][" +
                 std::to_string(col) + "] is " + std::to_string(got) + ", expected " + std::to_string(want));
    }
  }
}

template <simt::MmaOperand kType, int kN, simt::WgmmaMajor kMajorA = simt::WgmmaMajor::k,
          simt::WgmmaMajor kMajorB = simt::WgmmaMajor::k>
void wgmma_layout(int atom, const std::string& name) {
  check_wgmma<kType, kN, kMajorA, kMajorB>(kSwizzleAtoms[atom], true, wgmma_plant(), name);
  check_wgmma<kType, kN, kMajorA, kMajorB>(kSwizzleAtoms[atom], false, wgmma_plant(), name);
}

void wgmma_without_fence_is_an_error() {
  expect_simt_error([] { check_wgmma<simt::MmaOperand::f16, 16>(kSwizzleAtoms[1], true, WgmmaPlant::skip_fence, ""); },
                    {"wgmma.mma_async without a wgmma.fence"});
}

// ---- tensor copies into wgmma ----

// A (64 x 64) and B^T (32 x 64) bf16, K contiguous, through 128B-swizzled tensor copies into one
// warpgroup's wgmma; the accumulators start as NaN, which the first k-slice (scale-d 0) must drop.
void tma_feeds_wgmma() {
  constexpr int kN = 32, kK = 64;
  std::vector<uint16_t> a(64 * kK), b(kN * kK);
  std::vector<float> a_values(a.size()), b_values(b.size());
  const auto fill = [](std::vector<uint16_t>& bits, std::vector<float>& values, int salt) {
    for (std::size_t i = 0; i < bits.size(); ++i) {
      values[i] = static_cast<float>((static_cast<int>(i) * 7 + salt) % 11 - 5);
      bits[i] = static_cast<uint16_t>(operand_bits<simt::MmaOperand::bf16>(values[i]));
    }
  };
  fill(a, a_values, 3);
  fill(b, b_values, 4);
  CUtensorMap a_map, b_map;
  const auto swizzle = CU_TENSOR_MAP_SWIZZLE_128B;
  encode_2d(&a_map, a.data(), kK, 64, 2 * kK, kK, 64, swizzle, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  encode_2d(&b_map, b.data(), kK, kN, 2 * kK, kK, kN, swizzle, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  std::vector<float> d(128 * kN / 2);
  tma_wgmma<kN>(a_map, b_map, std::nanf(""), planted() == "skip_mbarrier_wait", d.data(), nullptr);
  for (int thread = 0; thread < 128; ++thread) {
    for (int i = 0; i < kN / 2; ++i) {
      const FragmentPlace& p = kD_m64nN[i % 4];
      const int row = 16 * (thread / 32) + p.row(thread % 32), col = 8 * (i / 4) + p.col(thread % 32);
      float want = 0;  // small integers: exact in any order
      for (int k = 0; k < kK; ++k) want += a_values[row * kK + k] * b_values[col * kK + k];
      const float got = d[thread * kN / 2 + i];
      expect(got == want, "thread " + std::to_string(thread) + " d" + std::to_string(i) + " = D[" +
                              std::to_string(row) + "][" + std::to_string(col) + "] is " + std::to_string(got) +
                              ", expected " + std::to_string(want));
    }
  }
}

// ---- a tensor-copy pipeline ----

constexpr int kPipeBlocks = 3;

// The whole matrix every block's tiles come from: small integers, so every sum is exact.
CUtensorMap pipeline_map(std::vector<float>& matrix) {
  const int rows = kPipeBlocks * kPipeTiles * kPipeTileRows;
  matrix.resize(rows * kPipeTileCols);
  for (std::size_t i = 0; i < matrix.size(); ++i) matrix[i] = static_cast<float>(static_cast<int>(i * 13 % 29) - 14);
  const cuuint64_t dims[2] = {kPipeTileCols, static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {kPipeTileCols * sizeof(float)};
  const cuuint32_t box[2] = {kPipeTileCols, kPipeTileRows};
  const cuuint32_t element_strides[2] = {1, 1};
  CUtensorMap map;
  simt::encode_tensor_map_tiled(&map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 2, matrix.data(), dims, strides, box,
                                element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                                CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return map;
}

void tma_pipeline_stages() {
  std::vector<float> matrix;
  const CUtensorMap map = pipeline_map(matrix);
  std::vector<float> out(kPipeBlocks * 96, -1.0f);
  tma_pipeline<true>(map, kPipeBlocks, out.data(), nullptr);
  for (int b = 0; b < kPipeBlocks; ++b) {
    for (int c = 0; c < 96; ++c) {
      float want = 0;
      for (int i = 0; i < kPipeTiles; ++i) {
        const float* tile = &matrix[(b * kPipeTiles + i) * kPipeTileFloats];
        for (int e = c; e < kPipeTileFloats; e += 96) want += tile[e];
      }
      expect(out[b * 96 + c] == want, "block " + std::to_string(b) + ", consumer " + std::to_string(c) + ": sum " +
                                          std::to_string(out[b * 96 + c]) + ", expected " + std::to_string(want));
    }
  }
}

// Consumers that never release their stages: the producer's fourth tile waits for an empty phase
// that never comes.
void tma_pipeline_deadlock_unreleased_stage() {
  std::vector<float> matrix;
  const CUtensorMap map = pipeline_map(matrix);
  std::vector<float> out(kPipeBlocks * 96);
  expect_simt_error([&] { tma_pipeline<false>(map, kPipeBlocks, out.data(), nullptr); },
                    {"deadlock", "lanes 0-0 wait for the phase of parity 0 of mbarrier",
                     "96 of 96 arrivals pending", "lanes 1-31 exited"});
}

constexpr simt::WgmmaMajor kMn = simt::WgmmaMajor::mn;

const std::map<std::string, void (*)()> kCases = {
    {"block_reduce", block_reduce},
    {"counters_coalescing", counters_coalescing},
    {"counters_bank_conflicts", counters_bank_conflicts},
    {"counters_lanes_that_move_nothing", counters_lanes_that_move_nothing},
    {"counters_loop_trips", counters_loop_trips},
    {"counters_barriers_and_fma", counters_barriers_and_fma},
    {"counters_off_outside_a_session", counters_off_outside_a_session},
    {"thread_indexing", thread_indexing},
    {"multiprocessor_count", multiprocessor_count},
    {"missing_barrier", missing_barrier},
    {"missing_barrier_once", missing_barrier_once},
    {"warp_reductions", warp_reductions},
    {"shuffle_semantics", shuffle_semantics},
    {"warp_votes", warp_votes},
    {"syncwarp_orders_shared_memory", syncwarp_orders_shared_memory},
    {"dynamic_shared_memory", dynamic_shared_memory},
    {"atomic_add", atomic_add},
    {"half_and_bfloat16", half_and_bfloat16},
    {"deadlock_barrier_after_exit", deadlock_barrier_after_exit},
    {"deadlock_shuffle_with_absent_lanes", deadlock_shuffle_with_absent_lanes},
    {"mismatched_collectives_is_an_error", mismatched_collectives_is_an_error},
    {"mask_excludes_caller_is_an_error", mask_excludes_caller_is_an_error},
    {"cp_async_forms", cp_async_forms},
    {"cp_async_wait_group", cp_async_wait_group},
    {"cp_async_with_wait_and_barrier", cp_async_with_wait_and_barrier},
    {"cp_async_missing_wait", cp_async_missing_wait},
    {"cp_async_missing_barrier", cp_async_missing_barrier},
    {"cp_async_random_early_landing", cp_async_random_early_landing},
    {"ldmatrix_x1", ldmatrix_layout<1, false>},
    {"ldmatrix_x2", ldmatrix_layout<2, false>},
    {"ldmatrix_x4", ldmatrix_layout<4, false>},
    {"ldmatrix_x1_trans", ldmatrix_layout<1, true>},
    {"ldmatrix_x2_trans", ldmatrix_layout<2, true>},
    {"ldmatrix_x4_trans", ldmatrix_layout<4, true>},
    {"mma_m16n8k16_f16", mma_m16n8k16_f16},
    {"mma_m16n8k16_bf16", mma_m16n8k16_bf16},
    {"mma_m16n8k8_f16", mma_m16n8k8_f16},
    {"mma_m16n8k8_bf16", mma_m16n8k8_bf16},
    {"mma_m16n8k8_tf32", mma_m16n8k8_tf32},
    {"mma_m16n8k4_tf32", mma_m16n8k4_tf32},
    {"mbarrier_phases", mbarrier_phases},
    {"mbarrier_pipeline", mbarrier_pipeline},
    {"mbarrier_deadlock_missing_arrival", mbarrier_deadlock_missing_arrival},
    {"mbarrier_misuse_is_an_error", mbarrier_misuse_is_an_error},
    {"bulk_copy_through_mbarrier", bulk_copy_through_mbarrier},
    {"bulk_copy_missing_wait", bulk_copy_missing_wait},
    {"bulk_copy_expect_tx_never_completes", bulk_copy_expect_tx_never_completes},
    {"bulk_copy_size_is_an_error", bulk_copy_size_is_an_error},
    {"wgmma_m64n16k16_f16_none", [] { wgmma_layout<simt::MmaOperand::f16, 16>(0, "m64n16k16.f16"); }},
    {"wgmma_m64n16k16_f16_128B", [] { wgmma_layout<simt::MmaOperand::f16, 16>(1, "m64n16k16.f16"); }},
    {"wgmma_m64n16k16_f16_64B", [] { wgmma_layout<simt::MmaOperand::f16, 16>(2, "m64n16k16.f16"); }},
    {"wgmma_m64n16k16_f16_32B", [] { wgmma_layout<simt::MmaOperand::f16, 16>(3, "m64n16k16.f16"); }},
    {"wgmma_m64n16k16_bf16_128B", [] { wgmma_layout<simt::MmaOperand::bf16, 16>(1, "m64n16k16.bf16"); }},
    {"wgmma_m64n256k16_bf16_128B", [] { wgmma_layout<simt::MmaOperand::bf16, 256>(1, "m64n256k16.bf16"); }},
    {"wgmma_m64n8k8_tf32_none", [] { wgmma_layout<simt::MmaOperand::tf32, 8>(0, "m64n8k8.tf32"); }},
    {"wgmma_m64n8k8_tf32_128B", [] { wgmma_layout<simt::MmaOperand::tf32, 8>(1, "m64n8k8.tf32"); }},
    {"wgmma_m64n64k16_f16_mn_none", [] { wgmma_layout<simt::MmaOperand::f16, 64, kMn, kMn>(0, "m64n64k16.f16 MN"); }},
    {"wgmma_m64n64k16_f16_mn_128B", [] { wgmma_layout<simt::MmaOperand::f16, 64, kMn, kMn>(1, "m64n64k16.f16 MN"); }},
    {"wgmma_m64n64k16_f16_mn_64B", [] { wgmma_layout<simt::MmaOperand::f16, 64, kMn, kMn>(2, "m64n64k16.f16 MN"); }},
    {"wgmma_m64n64k16_f16_mn_32B", [] { wgmma_layout<simt::MmaOperand::f16, 64, kMn, kMn>(3, "m64n64k16.f16 MN"); }},
    {"wgmma_m64n64k16_bf16_k_mn_128B",
     [] { wgmma_layout<simt::MmaOperand::bf16, 64, simt::WgmmaMajor::k, kMn>(1, "m64n64k16.bf16 K x MN"); }},
    {"wgmma_without_fence_is_an_error", wgmma_without_fence_is_an_error},
    {"tensor_copy_2d_none", [] { check_tensor_copy(0, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE); }},
    {"tensor_copy_2d_128B", [] { check_tensor_copy(1, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE); }},
    {"tensor_copy_2d_64B", [] { check_tensor_copy(2, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE); }},
    {"tensor_copy_2d_32B", [] { check_tensor_copy(3, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE); }},
    {"tensor_copy_2d_nan_fill", [] { check_tensor_copy(1, CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA); }},
    {"tensor_copy_4d_strided_window", tensor_copy_4d_strided_window},
    {"tensor_map_encoding_errors", tensor_map_encoding_errors},
    {"tensor_copy_misaligned_destination", tensor_copy_misaligned_destination},
    {"counters_bulk_copies", counters_bulk_copies},
    {"counters_tensor_copy", counters_tensor_copy},
    {"tma_feeds_wgmma", tma_feeds_wgmma},
    {"tma_pipeline_stages", tma_pipeline_stages},
    {"tma_pipeline_deadlock_unreleased_stage", tma_pipeline_deadlock_unreleased_stage},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--list") {
    for (const auto& entry : kCases) std::printf("%s\n", entry.first.c_str());
    return 0;
  }
  const auto found = argc == 2 ? kCases.find(argv[1]) : kCases.end();
  if (found == kCases.end()) {
    std::fprintf(stderr, "usage: %s CASE | --list\n", argv[0]);
    return 2;
  }
  try {
    found->second();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s failed: %s\n", found->first.c_str(), e.what());
    return 1;
  }
  std::printf("%s ok\n", found->first.c_str());
  return 0;
}
