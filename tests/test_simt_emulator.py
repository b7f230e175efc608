"""The SIMT emulator (csrc/simt): CUDA kernel sources compiled by g++ and run on the CPU.

The kernels under tests/simt_emulator/*.cuh are written once; `driver.cpp` runs one case per
invocation. Each variant of the driver is compiled once per session, all variants at the same time:

  fibers     the default build (-O2): every CUDA thread of a block a fiber
  ucontext   the same with the portable makecontext/swapcontext fibers (-DSIMT_FIBER_UCONTEXT)
  tsan       -fsanitize=thread: one OS thread per CUDA thread, races reported by ThreadSanitizer

Independent of the convkernels extension: only g++ and the CUDA headers are needed (nvcc for the
compile check).
"""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIMT_INCLUDE = ROOT / "csrc" / "simt"
KERNELS = ROOT / "tests" / "simt_emulator"
RUN_TIMEOUT_S = 60  # a deadlock must be reported, never hang: a timeout fails the test

# Every case of the driver, and what it establishes.
CASES = {
    "block_reduce": "a block-wide tree sum in static __shared__ memory, ordered by __syncthreads",
    "thread_indexing": "threadIdx/blockIdx/blockDim/gridDim of a 3-D launch; warps from the linear thread index",
    "multiprocessor_count": "a grid of simt::multiprocessor_count() blocks sees gridDim.x 4, the emulated GPU's SMs",
    "missing_barrier": "a kernel missing a barrier is right under the forward schedule, wrong under reversed/random",
    "warp_reductions": "warp sums by __shfl_down_sync (int) and __shfl_xor_sync (double)",
    "shuffle_semantics": "CUDA's source-lane rules: widths 8/16, srcLane modulo width, out-of-segment lanes, 16-lane mask",
    "warp_votes": "__ballot_sync, __any_sync, __all_sync",
    "syncwarp_orders_shared_memory": "__syncwarp orders shared-memory traffic within a warp",
    "dynamic_shared_memory": "SIMT_DYNAMIC_SHARED sized at launch, float and double kernels in one file; over 227 KiB is an error; an access past either end is an error",
    "atomic_add": "atomicAdd (int, unsigned, u64, float, double, half, bfloat16) from 64 blocks on 4 OS threads",
    "half_and_bfloat16": "__half and __nv_bfloat16 arithmetic through CUDA's own headers",
    "deadlock_barrier_after_exit": "__syncthreads after some threads exited is reported as a deadlock",
    "deadlock_shuffle_with_absent_lanes": "a shuffle whose masked lanes wait elsewhere is reported as a deadlock",
    "mismatched_collectives_is_an_error": "lanes of one mask in different collectives is an error",
    "mask_excludes_caller_is_an_error": "a warp collective whose mask excludes the caller is an error",
    "counters_coalescing": "32 coalesced floats take 4 sectors a request, a 32-byte stride 32",
    "counters_bank_conflicts": "a 32-way conflict takes 32 wavefronts (31 of them conflicts), a padded tile 1, 128-bit reads 4 (8, 4 of them conflicts, at a 32-byte stride), 64-bit 2, a broadcast 1",
    "counters_lanes_that_move_nothing": "lanes that take part in a request but move 0 bytes cost no sector",
    "counters_loop_trips": "a loop that names its trips (simt::LoopTrip) groups a line's stores into requests by trip, "
                           "where lanes store different numbers of times a trip",
    "counters_barriers_and_fma": "barriers per block and FMAs per thread, counted exactly from blocks on 3 OS threads",
    "counters_off_outside_a_session": "nothing is counted outside a session; sessions do not nest",
    "cp_async_forms": "cp.async .ca 4/8/16 and .cg 16 bytes; a partial src-size zero-fills the rest, src-size 0 only zeros",
    "cp_async_wait_group": "wait_group N lands all committed groups but the N newest; those stay stale (forward schedule)",
    "cp_async_with_wait_and_barrier": "cp.async, wait_group and __syncthreads: right under every schedule",
    "cp_async_missing_wait": "a kernel without cp.async.wait_group reads stale shared memory under every schedule",
    "cp_async_missing_barrier": "a kernel without __syncthreads after its wait reads stale copies of other threads",
    "cp_async_random_early_landing": "the random schedule lands some copies before their wait, the forward none",
    **{f"ldmatrix_x{n}{t}": f"ldmatrix.x{n}{t.replace('_', '.')}: every lane's registers as the PTX ISA's figure places them"
       for n in (1, 2, 4) for t in ("", "_trans")},
    **{f"mma_{shape}_{dtype}": f"mma.{shape}.{dtype}: fragments packed by the PTX ISA's tables give A B + C (float64 reference)"
       for shape, dtype in [("m16n8k16", "f16"), ("m16n8k16", "bf16"), ("m16n8k8", "f16"), ("m16n8k8", "bf16"),
                            ("m16n8k8", "tf32"), ("m16n8k4", "tf32")]},
    "mbarrier_phases": "mbarrier phases step by step: arrivals and tx-count complete a phase, parity waits, early complete_tx",
    "mbarrier_pipeline": "a producer warp and three consumer warps through two stages on full/empty mbarriers, 7 rounds",
    "mbarrier_deadlock_missing_arrival": "a phase one arrival short is a reported deadlock naming the barrier's state",
    "mbarrier_misuse_is_an_error": "an uninitialised, invalidated or misaligned mbarrier, count 0, one arrival too many, tx-count past 2^20 - 1",
    "bulk_copy_through_mbarrier": "cp.async.bulk copies of 16 and 512 bytes land and complete_tx their mbarrier",
    "bulk_copy_missing_wait": "a kernel that does not wait on the mbarrier reads stale shared memory under every schedule",
    "bulk_copy_expect_tx_never_completes": "expect_tx of more bytes than the copies bring is a reported deadlock (tx-count 16)",
    "bulk_copy_size_is_an_error": "a bulk copy of 12 bytes (not a multiple of 16) is an error",
    **{f"wgmma_m64n{n}k{k}_{dtype}_{layout}": f"wgmma.m64n{n}k{k}.{dtype}, K-major {layout}: operands placed by the "
       "PTX ISA's layout table, D read by its fragment table, give A B + C over several k-slices (float64 reference)"
       for n, k, dtype, layout in [(16, 16, "f16", "none"), (16, 16, "f16", "128B"), (16, 16, "f16", "64B"),
                                   (16, 16, "f16", "32B"), (16, 16, "bf16", "128B"), (256, 16, "bf16", "128B"),
                                   (8, 8, "tf32", "none"), (8, 8, "tf32", "128B")]},
    **{f"wgmma_m64n64k16_{dtype}_{majors}_{layout}": f"wgmma.m64n64k16.{dtype}, {label}, {layout}: the same, "
       "through the instruction's transpose bits"
       for dtype, majors, label, layout in [("f16", "mn", "A and B MN-major", "none"),
                                            ("f16", "mn", "A and B MN-major", "128B"),
                                            ("f16", "mn", "A and B MN-major", "64B"),
                                            ("f16", "mn", "A and B MN-major", "32B"),
                                            ("bf16", "k_mn", "A K-major, B MN-major", "128B")]},
    "wgmma_without_fence_is_an_error": "a wgmma.mma_async with no wgmma.fence before it is an error",
    **{f"tensor_copy_2d_{layout}": f"cp.async.bulk.tensor.2d, {layout}: a box partly outside a padded bf16 tensor "
       "lands row after row, 16-byte chunks where the layout table puts them, zeros outside"
       for layout in ("none", "128B", "64B", "32B")},
    "tensor_copy_2d_nan_fill": "cp.async.bulk.tensor.2d with NaN fill: all-ones bytes outside the tensor",
    "tensor_copy_4d_strided_window": "cp.async.bulk.tensor.4d reads an NHWC window as a stride-2 convolution does: "
                                     "element stride 2 along W, zero padding left of and above the image",
    "tensor_map_encoding_errors": "encode_tensor_map_tiled enforces cuTensorMapEncodeTiled's rules: swizzle span, "
                                  "stride and address alignment, box extents",
    "tensor_copy_misaligned_destination": "a tensor copy to shared memory that is not 128-byte aligned is an error",
    "counters_bulk_copies": "a cp.async.bulk counts one copy and the sectors its source touches: 128 aligned bytes "
                            "4, misaligned 5; 16-byte copies sharing a sector count it each; none is a request",
    "counters_tensor_copy": "a tensor copy counts the sectors of its in-bounds rows only (4 a 128-byte row, 3 "
                            "from column -8); rows outside the tensor read nothing",
    "tma_feeds_wgmma": "128B-swizzled tensor copies of A and B on one mbarrier feed wgmma's descriptors: D = A B",
    "tma_pipeline_stages": "a producer thread and three consumer warps through 3 stages of tensor copies on full/empty "
                           "mbarriers, 10 tiles in each of 3 blocks",
    "tma_pipeline_deadlock_unreleased_stage": "consumers that never release a stage: the producer's wait is a "
                                              "reported deadlock",
}
# Errors planted in the layout cases' kernels (SIMT_TEST_PLANT): a swapped register, a descriptor or a
# tensor map with the wrong swizzle, swapped descriptor offsets, a missing wgmma.wait_group or mbarrier
# wait must fail them (under the default, forward schedule, which lands no copy early).
PLANTED = [(case, "swap_registers") for case in CASES if case.startswith("ldmatrix_")] + [
    (case, plant) for case in CASES if case.startswith("mma_") for plant in ("swap_a", "swap_b", "swap_c")] + [
    (case, plant) for case in CASES if case.startswith("wgmma_m")
    for plant in ("wrong_swizzle", "swap_d", "skip_wait",
                  *(("swap_lbo_sbo",) if case.endswith("_none") or "_mn_" in case else ()))] + [
    (case, "wrong_swizzle") for case in CASES if case.startswith("tensor_copy_2d_")] + [
    ("tensor_copy_4d_strided_window", "shifted_window"), ("tma_feeds_wgmma", "skip_mbarrier_wait")]
# Run only under ThreadSanitizer, which must report its race.
RACE_CASE = "missing_barrier_once"

# Kernels whose results must not depend on the order in which a block's threads run.
SCHEDULE_INDEPENDENT = [
    "block_reduce",
    "warp_reductions",
    "shuffle_semantics",
    "syncwarp_orders_shared_memory",
    "dynamic_shared_memory",
    "half_and_bfloat16",
    "cp_async_forms",
    "cp_async_wait_group",
    "cp_async_with_wait_and_barrier",
    "ldmatrix_x4_trans",
    "mma_m16n8k16_f16",
    "mbarrier_phases",
    "mbarrier_pipeline",
    "bulk_copy_through_mbarrier",
    "wgmma_m64n16k16_f16_128B",
    "tensor_copy_2d_128B",
    "tma_feeds_wgmma",
    "tma_pipeline_stages",
]


def _cuda_include_dir():
    """A directory with cuda_fp16.h and the crt/ headers it includes, or None."""
    candidates = [os.path.join(os.environ[v], "include") for v in ("CUDA_HOME", "CUDA_PATH") if v in os.environ]
    candidates.append("/usr/local/cuda/include")
    for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *sys.path}:
        candidates += sorted(glob.glob(os.path.join(site, "nvidia", "cu*", "include")))
        candidates += sorted(glob.glob(os.path.join(site, "nvidia", "cuda_runtime", "include")))
        candidates.append(os.path.join(site, "triton", "backends", "nvidia", "include"))
    for path in candidates:
        if os.path.isfile(os.path.join(path, "cuda_fp16.h")) and os.path.isfile(
            os.path.join(path, "crt", "host_defines.h")
        ):
            return path
    return None


GXX = shutil.which("g++")
CUDA_INCLUDE = _cuda_include_dir()
NVCC = shutil.which("nvcc")

VARIANT_FLAGS = {
    "fibers": ["-O2"],
    "ucontext": ["-O1", "-DSIMT_FIBER_UCONTEXT"],
    "tsan": ["-O1", "-g", "-fsanitize=thread"],
}


class DriverBuilds:
    """Starts every variant's compile at once; `get` waits for one."""

    def __init__(self, out_dir):
        self._builds = {}
        self._results = {}
        for variant, flags in VARIANT_FLAGS.items():
            binary = out_dir / f"driver_{variant}"
            cmd = [GXX, "-std=c++17", *flags, "-Wall", "-Wextra", "-Werror", "-Wno-unknown-pragmas", f"-I{SIMT_INCLUDE}",
                   "-isystem", CUDA_INCLUDE, str(KERNELS / "driver.cpp"), "-o", str(binary), "-pthread"]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            self._builds[variant] = (proc, binary, cmd)

    def get(self, variant):
        """(binary, compiler return code, compiler output, command line)"""
        if variant not in self._results:
            proc, binary, cmd = self._builds[variant]
            output, _ = proc.communicate()
            self._results[variant] = (binary, proc.returncode, output, " ".join(cmd))
        return self._results[variant]


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    if GXX is None:
        pytest.skip("g++ is not on PATH")
    if CUDA_INCLUDE is None:
        pytest.skip("no CUDA headers (cuda_fp16.h with crt/host_defines.h) under CUDA_HOME, "
                    "/usr/local/cuda or site-packages")
    return DriverBuilds(tmp_path_factory.mktemp("simt"))


def _driver(builds, variant):
    binary, returncode, output, cmd = builds.get(variant)
    assert returncode == 0, f"the {variant} driver does not compile:\n{cmd}\n{output}"
    return binary


@pytest.fixture(scope="session")
def fibers(builds):
    return _driver(builds, "fibers")


@pytest.fixture(scope="session")
def ucontext(builds):
    return _driver(builds, "ucontext")


@pytest.fixture(scope="session")
def tsan(builds):
    _, returncode, output, _ = builds.get("tsan")
    if returncode != 0 and "tsan" in output.replace("driver_tsan", ""):  # e.g. no libtsan installed
        pytest.skip(f"-fsanitize=thread does not link here:\n{output}")
    binary = _driver(builds, "tsan")
    probe = run(binary, "--list")
    if probe.returncode != 0:  # e.g. "FATAL: ThreadSanitizer: unexpected memory mapping"
        pytest.skip(f"ThreadSanitizer binaries do not run on this machine:\n{probe.stderr}")
    return binary


def run(binary, case, **env):
    """Runs one case with the SIMT_* settings given here and no others."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIMT_")}
    try:
        return subprocess.run([str(binary), case], env={**clean, **env}, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case} did not finish in {RUN_TIMEOUT_S} s: a hang, where an error was due")


def assert_passes(result, case):
    assert result.returncode == 0, f"{case} ({CASES.get(case, RACE_CASE)}):\n{result.stdout}{result.stderr}"


def test_driver_runs_exactly_the_specified_cases(fibers):
    listed = run(fibers, "--list").stdout.split()
    assert sorted(listed) == sorted([*CASES, RACE_CASE])


@pytest.mark.parametrize("case", CASES)
def test_case(fibers, case):
    assert_passes(run(fibers, case), case)


@pytest.mark.parametrize("schedule", ["reversed", "random:1", "random:987654321"])
@pytest.mark.parametrize("case", SCHEDULE_INDEPENDENT)
def test_correct_kernels_do_not_depend_on_the_schedule(fibers, case, schedule):
    assert_passes(run(fibers, case, SIMT_SCHEDULE=schedule, SIMT_BLOCK_THREADS="1"), case)


@pytest.mark.parametrize("case,plant", PLANTED)
def test_layout_checks_fail_on_a_planted_error(fibers, case, plant):
    result = run(fibers, case, SIMT_TEST_PLANT=plant)
    assert result.returncode == 1, f"{case} passed with {plant} planted:\n{result.stdout}"
    assert "expected" in result.stderr


@pytest.mark.parametrize("schedule", ["forward", "reversed", "random:1", "random:987654321"])
def test_pipeline_fails_when_consumers_wait_on_the_wrong_parity(fibers, schedule):
    """The consumer's wait is what orders its read: with the other parity it reads an unwritten stage
    or waits for a phase that never comes, under every schedule."""
    result = run(fibers, "mbarrier_pipeline", SIMT_TEST_PLANT="wrong_parity", SIMT_SCHEDULE=schedule)
    assert result.returncode == 1, f"the pipeline passed with the wrong parity under {schedule}:\n{result.stdout}"
    assert "expected" in result.stderr or "deadlock" in result.stderr


def test_conflicting_requests_are_reported_with_their_source_line(fibers):
    """SIMT_REPORT_CONFLICTS=1: each counted shared request that conflicts is a line on stderr, with
    the kernel, the accessor's line and each lane's bytes from the lowest; conflict-free ones are
    not reported."""
    quiet = run(fibers, "counters_bank_conflicts")
    assert_passes(quiet, "counters_bank_conflicts")
    assert "simt:" not in quiet.stderr
    result = run(fibers, "counters_bank_conflicts", SIMT_REPORT_CONFLICTS="1")
    assert_passes(result, "counters_bank_conflicts")
    lines = [line for line in result.stderr.splitlines() if line.startswith("simt:")]
    source = (KERNELS / "counters.cuh").read_text().splitlines()
    store_line = 1 + next(i for i, text in enumerate(source) if "simt::st_shared(&tile[lane][0]" in text)
    # The unpadded column's store and load (32 lanes, 128 bytes apart: 32 wavefronts), and the
    # strided 128-bit reads (8 wavefronts, 4 of them conflicts); nothing of the padded tile.
    assert len(lines) == 3, result.stderr
    assert lines[0].startswith(f"simt: tile_column<32>: {KERNELS / 'counters.cuh'}:{store_line}: a shared store "
                               "took 32 wavefronts, 31 beyond the fewest; lane:bytes 0:+0 1:+128 2:+256"), lines[0]
    assert "tile_column<32>" in lines[1] and "a shared load took 32 wavefronts" in lines[1]
    assert lines[2].startswith("simt: wide_shared_reads:") and "took 8 wavefronts, 4 beyond" in lines[2]


def test_malformed_setting_is_reported(fibers):
    result = run(fibers, "block_reduce", SIMT_SCHEDULE="sideways")
    assert result.returncode == 1
    assert "SIMT_SCHEDULE='sideways' is not forward, reversed or random[:SEED]" in result.stderr


def test_os_thread_mode_needs_its_own_build(fibers):
    result = run(fibers, "block_reduce", SIMT_MODE="threads")
    assert result.returncode == 1
    assert "-DSIMT_ENABLE_OS_THREADS" in result.stderr


@pytest.mark.parametrize("case", ["block_reduce", "warp_reductions", "missing_barrier",
                                  "deadlock_shuffle_with_absent_lanes"])
def test_ucontext_fibers(ucontext, case):
    assert_passes(run(ucontext, case), case)


@pytest.mark.parametrize("case", ["block_reduce", "syncwarp_orders_shared_memory",
                                  "deadlock_barrier_after_exit", "deadlock_shuffle_with_absent_lanes",
                                  "counters_bank_conflicts", "counters_barriers_and_fma",
                                  "cp_async_with_wait_and_barrier", "cp_async_wait_group",
                                  "mbarrier_pipeline", "mbarrier_deadlock_missing_arrival",
                                  "bulk_copy_through_mbarrier", "bulk_copy_expect_tx_never_completes",
                                  "wgmma_m64n16k16_bf16_128B", "tma_feeds_wgmma", "tma_pipeline_stages",
                                  "tma_pipeline_deadlock_unreleased_stage"])
def test_os_threads_under_threadsanitizer(tsan, case):
    """Correct kernels run without a race report; deadlocks are reported, not hung."""
    result = run(tsan, case)
    assert_passes(result, case)
    assert "ThreadSanitizer" not in result.stderr


def test_threadsanitizer_reports_the_missing_barrier(tsan):
    result = run(tsan, RACE_CASE)
    assert "WARNING: ThreadSanitizer: data race" in result.stderr
    assert "missing_barrier.cuh" in result.stderr


# Each wgmma shape and type, and each tensor copy rank, is its own asm statement: instantiate the
# driver's, so that ptxas sees them.
INSTANCES = "".join(
    f"template __global__ void wgmma_kernel<simt::MmaOperand::{dtype}, {n}, simt::WgmmaMajor::{a}, "
    f"simt::WgmmaMajor::{b}>(const unsigned char*, int, WgmmaTile, const float*, float*, WgmmaPlant);\n"
    for dtype, n, a, b in [("f16", 16, "k", "k"), ("bf16", 16, "k", "k"), ("bf16", 256, "k", "k"),
                           ("tf32", 8, "k", "k"), ("f16", 64, "mn", "mn"), ("bf16", 64, "k", "mn")]
) + ("template __global__ void tma_wgmma_kernel<32>(const __grid_constant__ CUtensorMap, "
     "const __grid_constant__ CUtensorMap, float, bool, float*);\n") + "".join(
    f"template __global__ void tensor_copy_kernel<{rank}>(const __grid_constant__ CUtensorMap, TensorCoords<{rank}>, "
    "int, int, unsigned char*);\n" for rank in (2, 4)) + "".join(
    f"template __global__ void tma_pipeline_kernel<{release}>(const __grid_constant__ CUtensorMap, float*);\n"
    for release in ("true", "false"))


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("arch", ["sm_90a", "sm_80"])
def test_the_same_kernel_sources_compile_with_nvcc(tmp_path, arch):
    """Every .cuh, launchers included, compiled to an object for sm_90a (the Hopper instructions
    as PTX) and for sm_80 (where those compile to a trap)."""
    source = tmp_path / "all_kernels.cu"
    source.write_text("".join(f'#include "{p}"\n' for p in sorted(KERNELS.glob("*.cuh"))) + INSTANCES)
    result = subprocess.run([NVCC, "-std=c++17", f"-arch={arch}", f"-I{SIMT_INCLUDE}", "-c", str(source), "-o",
                             str(tmp_path / "all_kernels.o")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
