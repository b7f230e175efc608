"""The channels_last implicit GEMM on Hopper (csrc/cuda/nhwc_igemm/warpgroup_mma.cuh): on an sm_90
GPU (H100, H200) the tensor-core GEMMs of fprop and dgrad (float16, bfloat16, TF32) and of the
half-type weight gradient multiply on warpgroups with wgmma, both operands read by the tensor cores
from swizzled shared stages (K-major for fprop and dgrad, MN-major for wgrad), one stage's wgmmas
left in flight while the next is copied (with CONVKERNELS_TMA=0: most half-type fprop and dgrad
problems take the TMA kernel instead, test_tma_igemm.py). Run here by the SIMT emulator as an sm_90a GPU
(simt.arch("sm_90a")): which passes take it, that it matches torch in float64 on every edge case of
the sm_80 kernels' grids (test_channels_last_igemm.py, test_channels_last_wgrad.py), under permuted
schedules too (a stage refilled while a wgmma still reads it gives a wrong answer there), and what
its counters show."""
import os
import subprocess
import sys

import pytest
import torch

from conv_reference import ConvCase, assert_matches_torch, assert_tf32_follows_allow_tf32, tf32_allowed
from test_channels_last_igemm import (EDGES, KERNEL, SEVERAL_TAPS_EDGES, STRIDED_DGRAD_EDGES, instantiation,
                                      kernels_of, passes_of)
from test_channels_last_wgrad import EDGES as WGRAD_EDGES
from test_channels_last_wgrad import KERNEL as WGRAD_KERNEL
from test_channels_last_wgrad import SPLIT, wgrad_counters

simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built (no CUDA headers)")

# float32 goes to wgmma in TF32 only.
WGMMA_TYPES = [(torch.bfloat16, False), (torch.float16, False), (torch.float32, True)]
WGMMA_TYPE_IDS = ["bfloat16", "float16", "tf32"]


@pytest.fixture(autouse=True)
def hopper(monkeypatch):
    # Half-type fprop and dgrad would mostly take the TMA kernel (test_tma_igemm.py): here, the
    # cp.async ones.
    monkeypatch.setenv("CONVKERNELS_TMA", "0")
    with simt.arch("sm_90a"):
        yield


def on_warpgroups(kernels):
    """The pass's channels_last GEMMs (there are some) all multiply with wgmma."""
    return {"WarpgroupMma" in k for k in kernels if KERNEL in k} == {True}


@pytest.mark.parametrize("dtype,tf32", WGMMA_TYPES, ids=WGMMA_TYPE_IDS)
def test_tensor_core_fprop_and_dgrad_take_wgmma(dtype, tf32):
    for case in (ConvCase(False, (1, 16, 6, 6), (24, 16, 3, 3), kwargs=dict(padding=1)),
                 ConvCase(False, (1, 16, 6, 6), (24, 16, 3, 3), kwargs=dict(stride=2)),
                 ConvCase(True, (1, 16, 5, 5), (16, 8, 3, 3))):
        passes = passes_of(case, dtype, tf32)
        assert on_warpgroups(passes["fprop"]) and on_warpgroups(passes["dgrad"]), passes


def test_other_gemms_keep_their_kernels():
    """IEEE float32 and float64 multiply on CUDA cores, 3xTF32 splits its operands in registers
    (which wgmma reads from shared memory), and packed small groups skip the off-diagonal blocks
    per n8 tile (a wgmma multiplies all its columns): these keep the sm_80 kernels. So does an
    sm_80 GPU."""
    dense = ConvCase(False, (1, 16, 6, 6), (24, 16, 3, 3), kwargs=dict(padding=1))
    for dtype in (torch.float32, torch.float64):
        kernels = passes_of(dense, dtype, False)["fprop"]
        assert takes_channels_last(kernels) and not any("WarpgroupMma" in k for k in kernels)
    previous = simt.set_float32_precision("3xtf32")
    try:
        kernels = passes_of(dense, torch.float32, False)["fprop"]
        assert takes_channels_last(kernels) and not any("WarpgroupMma" in k for k in kernels)
    finally:
        simt.set_float32_precision(previous)
    packed = ConvCase(False, (1, 32, 6, 6), (32, 4, 3, 3), kwargs=dict(padding=1, groups=8))
    kernels = passes_of(packed, torch.bfloat16, False)["fprop"]
    assert takes_channels_last(kernels) and not any("WarpgroupMma" in k for k in kernels)
    with simt.arch("sm_80"):
        kernels = passes_of(dense, torch.bfloat16, False)["fprop"]
        assert takes_channels_last(kernels) and not any("WarpgroupMma" in k for k in kernels)


def takes_channels_last(kernels):
    return any(KERNEL in k for k in kernels)


@pytest.mark.parametrize("dtype,tf32", WGMMA_TYPES, ids=WGMMA_TYPE_IDS)
@pytest.mark.parametrize("case", EDGES + STRIDED_DGRAD_EDGES + SEVERAL_TAPS_EDGES, ids=str)
def test_edges_match_float64_reference(case, dtype, tf32):
    with tf32_allowed(tf32):
        assert_matches_torch(simt, case, dtype=dtype, memory_format=torch.channels_last, tf32=tf32)


@pytest.mark.parametrize("case", [EDGES[1], EDGES[5], STRIDED_DGRAD_EDGES[0], SEVERAL_TAPS_EDGES[0]], ids=str)
@pytest.mark.parametrize("order", ["reversed", "random:11"])
def test_permuted_schedules(case, order):
    with simt.schedule(order):
        assert_matches_torch(simt, case, dtype=torch.bfloat16, memory_format=torch.channels_last)


@pytest.mark.parametrize("case", [ConvCase(False, (1, 32, 6, 6), (40, 32, 3, 3), kwargs=dict(padding=1)),
                                  ConvCase(False, (1, 8, 7, 6), (16, 8, 3, 3), kwargs=dict(stride=2, padding=1))],
                         ids=["one tap a stage", "several taps a stage"])
def test_tf32_is_rounded_to_nearest_ties_away_as_on_sm_80(case):
    """wgmma reads float32 from shared memory and truncates it to TF32; the stages are rounded in
    place first, so allow_tf32 means what it means on the mma.sync kernels (operands halfway
    between TF32 numbers tell rounding from truncation)."""
    passes = passes_of(case, torch.float32, True)
    assert on_warpgroups(passes["fprop"]) and on_warpgroups(passes["dgrad"])
    assert_tf32_follows_allow_tf32(simt, case)


def test_nchw_operands():
    assert_matches_torch(simt, EDGES[2], dtype=torch.float16)


def test_long_k_keeps_one_stage_of_wgmma_in_flight():
    """640 channels of a 3x3 filter: 180 k-stages through a 4-stage ring (two copied ahead, one
    multiplied, one still read by the wgmma in flight); every product must see its own stage."""
    assert_matches_torch(simt, ConvCase(False, (1, 640, 3, 3), (64, 640, 3, 3), kwargs=dict(padding=1)),
                         dtype=torch.bfloat16, memory_format=torch.channels_last, backward=False)


def test_aligned_shape_counters():
    """1x1, 64 -> 128 channels, 16x16 pixels, bfloat16: the 128x128 tile, 2 blocks of 2 warpgroups,
    2 stages of 2 m64n128k16 wgmmas each (16 m64n8 slices): the GEMM's 256 x 128 x 64 products
    once, 256 slices. The copies and the epilogue move whole sectors (16 per request) and meet no
    bank conflict; no mma.sync is issued."""
    x = torch.randn(1, 64, 16, 16).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(128, 64, 1, 1).to(torch.bfloat16)
    with simt.counters() as launched:
        simt.conv2d(x, w)
    (name, counters), = launched.items()
    assert KERNEL in name and "WarpgroupMma" in name
    assert counters.wgmma_m64n8 == 256 * 128 * 64 // (64 * 8 * 16) == 256
    assert counters.mma_16816 == counters.mma_1688 == 0
    assert counters.sectors_per_request == 16
    assert counters.shared_bank_conflicts == 0


def test_a_first_layer_multiplies_seven_taps_a_stage():
    """As on sm_80 (test_channels_last_igemm.py): 3 bfloat16 channels padded to 4, 7x7 stride 2, 64
    outputs at 8x8 pixels, copied in 8-byte pieces: 7 stages of seven taps where one tap a stage
    took 49. One warpgroup's 64x64 tile: 7 stages x 2 wgmma m64n64k16 x 8 slices."""
    x = torch.randn(1, 3, 16, 16).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 3, 7, 7).to(torch.bfloat16)
    with simt.counters() as launched:
        simt.conv2d(x, w, stride=2, padding=3)
    (name, counters), = launched.items()
    assert KERNEL in name and "WarpgroupMma" in name and instantiation(name) == (True, False, 8)
    assert counters.wgmma_m64n8 == 7 * 2 * 8
    assert counters.shared_bank_conflicts == 0


def test_the_environment_picks_the_emulated_gpu_and_can_keep_mma_sync():
    """SIMT_ARCH=sm_90a makes the emulated GPU a Hopper one from the start; CONVKERNELS_WGMMA=0
    keeps the mma.sync kernels there (as on an H200, to compare the two)."""
    script = ("import torch, convkernels.simt as simt\n"
              "x = torch.randn(1, 16, 6, 6).to(torch.bfloat16)\n"
              "with simt.counters() as launched:\n"
              "    simt.conv2d(x, torch.randn(8, 16, 3, 3).to(torch.bfloat16))\n"
              "print(*launched)\n")
    names = {}
    for wgmma in ("1", "0"):
        env = {**os.environ, "SIMT_ARCH": "sm_90a", "CONVKERNELS_WGMMA": wgmma}
        names[wgmma] = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                      check=True).stdout
    assert "WarpgroupMma" in names["1"]
    assert KERNEL in names["0"] and "WarpgroupMma" not in names["0"]


def test_arch_names_are_checked():
    with pytest.raises(RuntimeError, match="SIMT_ARCH='sm_100' is not sm_80 or sm_90a"):
        with simt.arch("sm_100"):
            pass


# The weight gradient: half types on wgmma (MN-major operands, which TF32 cannot be).
WGRAD_TYPES = [torch.bfloat16, torch.float16]


def wgrad_on_warpgroups(kernels):
    return {"WarpgroupMma" in k for k in kernels if WGRAD_KERNEL in k} == {True}


@pytest.mark.parametrize("layout", [None, torch.channels_last], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", WGRAD_TYPES, ids=str)
def test_half_type_wgrad_takes_wgmma(dtype, layout):
    for case in (ConvCase(False, (1, 16, 6, 6), (24, 16, 3, 3), kwargs=dict(padding=1)),
                 ConvCase(True, (1, 16, 5, 5), (16, 8, 3, 3), kwargs=dict(stride=2))):
        _, launched = wgrad_counters(case, dtype, False, layout)
        assert wgrad_on_warpgroups(launched), launched.keys()


@pytest.mark.parametrize("outputs,channels,taps,columns,warpgroups", [
    (64, 64, 3, 128, 1), (64, 72, 1, 128, 1), (64, 136, 1, 64, 1), (64, 24, 1, 64, 1),
    (128, 64, 3, 128, 2), (136, 24, 1, 64, 1), (112, 24, 1, 64, 2)])
def test_the_wgrad_tile_doubles_where_little_is_padding(outputs, channels, taps, columns, warpgroups):
    """128 columns of (tap, channel), and two warpgroups for 128 rows (output channels), each where
    the doubled extent pads the GEMM's to at most 1.25x what 64 does (64 channels x 9 taps: 640
    columns for 576; 72 x 1: 128 for 128; not 136 x 1: 256 for 192, nor 24 x 1: 128 for 64; 128
    and 112 outputs: 128 rows for 128; not 136: 256 for 192), so each staged pixel row of dy or x
    feeds up to twice the products; the result as torch's."""
    case = ConvCase(False, (2, channels, 7, 6), (outputs, channels, taps, taps), kwargs=dict(padding=taps // 2))
    _, launched = wgrad_counters(case, torch.bfloat16, False, torch.channels_last)
    (name,) = [n for n in launched if WGRAD_KERNEL in n]
    assert f"WarpgroupWgradTile<BFloat16, {columns}, {warpgroups}>" in name
    assert_matches_torch(simt, case, dtype=torch.bfloat16, memory_format=torch.channels_last)


def test_tf32_and_packed_wgrad_keep_mma_sync():
    dense = ConvCase(False, (1, 16, 6, 6), (24, 16, 3, 3), kwargs=dict(padding=1))
    _, launched = wgrad_counters(dense, torch.float32, True, torch.channels_last)
    assert any(WGRAD_KERNEL in k and "TransposedWarpMma" in k for k in launched), launched.keys()
    packed = ConvCase(False, (1, 32, 6, 6), (32, 4, 3, 3), kwargs=dict(padding=1, groups=8))
    _, launched = wgrad_counters(packed, torch.bfloat16, False, torch.channels_last)
    assert any(WGRAD_KERNEL in k and "TransposedWarpMma" in k for k in launched), launched.keys()


@pytest.mark.parametrize("dtype", WGRAD_TYPES, ids=str)
@pytest.mark.parametrize("case", WGRAD_EDGES, ids=str)
def test_wgrad_edges_match_float64_reference(case, dtype):
    assert_matches_torch(simt, case, dtype=dtype, memory_format=torch.channels_last)


@pytest.mark.parametrize("case", [WGRAD_EDGES[0], WGRAD_EDGES[4], WGRAD_EDGES[5]], ids=str)
def test_wgrad_under_a_permuted_schedule(case):
    with simt.schedule("random:5"):
        assert_matches_torch(simt, case, dtype=torch.bfloat16, memory_format=torch.channels_last)


def test_a_split_wgrad_gives_the_same_bits_every_run():
    first, launched = wgrad_counters(SPLIT, torch.bfloat16, False, torch.channels_last)
    assert wgrad_on_warpgroups(launched)
    with simt.schedule("reversed"):
        second, _ = wgrad_counters(SPLIT, torch.bfloat16, False, torch.channels_last)
    assert torch.equal(first.view(torch.int16), second.view(torch.int16))


def test_aligned_wgrad_counters():
    """1x1, 64 -> 64 channels, 16x16 pixels, bfloat16: 16-byte cp.async lanes, 4 pixels of 128
    contiguous bytes a warp request (16 sectors), no bank conflict in the 128-byte-swizzled tiles,
    and the GEMM (64 x 64, depth 256) once: 16 k16 steps of one m64n64 wgmma (8 slices)."""
    x = torch.randn(1, 64, 16, 16).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    dy = torch.randn(1, 64, 16, 16).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with simt.counters() as launched:
        dw = torch.ops.convkernels_simt.conv2d_weight(x, dy, [64, 64, 1, 1], [1, 1], [0, 0], [1, 1], 1)
    (name, counters), = [(n, c) for n, c in launched.items() if WGRAD_KERNEL in n]
    assert "WarpgroupMma" in name
    assert counters.global_load_sectors == 16 * counters.global_load_requests
    assert counters.shared_bank_conflicts == 0
    assert counters.wgmma_m64n8 == 64 * 64 * 256 // (64 * 8 * 16) == 128
    assert counters.mma_16816 == 0
    expected = torch.nn.functional.grad.conv2d_weight(x.double(), (64, 64, 1, 1), dy.double())
    bound = torch.nn.functional.grad.conv2d_weight(x.double().abs(), (64, 64, 1, 1), dy.double().abs())
    assert ((dw.double() - expected).abs() <= 2 ** -6 * bound).all()
