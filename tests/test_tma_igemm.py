"""The warp-specialised TMA implicit GEMM (csrc/cuda/nhwc_igemm/tma_conv_kernel.cuh): on an sm_90
GPU, float16, bfloat16 and TF32 fprop and dgrad whose groups are unpacked and whose channels fill a
stage by themselves (one filter tap a stage) copy both operands with the tensor memory
accelerator, a box of output pixels at one filter tap (padding and strides done by the copy),
multiply on two consumer warpgroups with wgmma, and run one persistent block an SM over the
tiles. Run here by the
SIMT emulator as an sm_90a GPU with 4 SMs (simt.arch("sm_90a")): which problems take it, that it
matches torch in float64 on the edges of its geometry (boxes past the output, partial channel
chunks, groups, the fused shuffle, strides up to a copy's 8, dgrad's stride phases), with blocks
taking many tiles through the stage ring and under permuted schedules, and what its counters show."""
import os

import pytest
import torch

from conv_reference import ConvCase, assert_matches_torch, assert_tf32_follows_allow_tf32, tf32_allowed
from test_channels_last_igemm import KERNEL, passes_of

simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built (no CUDA headers)")

TMA_KERNEL = "channels_last_tma_igemm_kernel"
TYPES = [(torch.bfloat16, False), (torch.float16, False), (torch.float32, True)]
TYPE_IDS = ["bfloat16", "float16", "tf32"]


@pytest.fixture(autouse=True)
def hopper():
    with simt.arch("sm_90a"):
        yield


def on_tma(kernels):
    """The pass runs implicit GEMMs, every one of them the TMA kernel."""
    gemms = [k for k in kernels if TMA_KERNEL in k or KERNEL in k]
    return gemms != [] and all(TMA_KERNEL in k for k in gemms)


# Every case takes the TMA kernel in fprop and dgrad (checked below).
TMA_EDGES = [
    # 40 channels: two 64-byte chunks a tap, the second 8 channels and zeros; dilation, padding 2.
    ConvCase(False, (2, 40, 7, 6), (24, 40, 3, 3), kwargs=dict(padding=2, dilation=2)),
    # Groups of 48 channels (the second chunk's other half is the next group's: read as zeros) and
    # 40 outputs (a 64-column tile reads the next group's filters, never stored); stride 2.
    ConvCase(False, (2, 96, 9, 10), (80, 48, 3, 3), kwargs=dict(groups=2, stride=2, padding=1)),
    # 1x1 to 136 outputs: three 64-column tiles, 8 of the third's columns stored.
    ConvCase(False, (1, 32, 5, 7), (136, 32, 1, 1)),
    # The fused channel shuffle scatters each group's outputs.
    ConvCase(False, (1, 64, 6, 6), (64, 32, 3, 3), shuffled=True, kwargs=dict(groups=2, padding=1)),
    # conv_transpose2d: its forward is the dgrad GEMM.
    ConvCase(True, (2, 32, 6, 7), (32, 40, 3, 3), kwargs=dict(padding=1)),
    # Stride 3: a box of 3-apart pixels, and dgrad's 9 stride phases.
    ConvCase(False, (1, 32, 10, 11), (32, 32, 3, 3), kwargs=dict(stride=3, padding=1)),
    # 7x7 outputs of 3 images: boxes of 7 x 4 x 3 pixels (84 rows of 128), 3 rows of the second past P.
    ConvCase(False, (3, 32, 7, 7), (32, 32, 3, 3), kwargs=dict(padding=1)),
    # Padding as large as the filter on one side, none on the other.
    ConvCase(False, (1, 32, 5, 6), (32, 32, 5, 3), bias=False, kwargs=dict(padding=(4, 0))),
    # Stride 8, the largest element stride of a copy.
    ConvCase(False, (1, 32, 17, 17), (32, 32, 2, 2), kwargs=dict(stride=8)),
    # 200 outputs: one 256-column tile (a consumer warpgroup's 64 x 256 accumulators).
    ConvCase(False, (1, 48, 6, 5), (200, 48, 3, 3), kwargs=dict(padding=1)),
]


@pytest.mark.parametrize("dtype,tf32", TYPES, ids=TYPE_IDS)
def test_tensor_core_fprop_and_dgrad_take_the_tma_kernel(dtype, tf32):
    """Every GEMM of the forward; in dgrad, every stride phase that a filter tap reaches (at stride
    8 a 2x2 filter reaches 4 of 64: the cp.async kernel fills the others with the bias, reading
    nothing)."""
    for case in TMA_EDGES:
        passes = passes_of(case, dtype, tf32)
        assert on_tma(passes["fprop"]), (case, passes)
        assert on_tma(passes["dgrad"]) or case.kwargs.get("stride") == 8, (case, passes)
        assert any(TMA_KERNEL in k for k in passes["dgrad"]), (case, passes)


@pytest.mark.parametrize("outputs,columns", [(40, 64), (64, 64), (128, 128), (136, 64), (256, 256), (264, 128)])
def test_the_tile_is_the_widest_that_multiplies_little_padding(outputs, columns):
    """256, 128 or 64 columns: the widest whose padded outputs are within 1.25x of the fewest (136
    outputs take 3 x 64 = 192 columns rather than 2 x 128 = 256; 264 take 3 x 128 = 384)."""
    x = torch.randn(1, 32, 4, 4).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with simt.counters() as launched:
        simt.conv2d(x, torch.randn(outputs, 32, 1, 1).to(torch.bfloat16))
    (name,) = launched
    assert f"{TMA_KERNEL}<BFloat16, TmaTileShape<{columns}," in name


def test_other_problems_keep_the_cp_async_kernels():
    """IEEE float32 and 3xTF32 (CUDA cores, and operands split in registers), channels that share
    a stage between taps, packed small groups and strides past 8 keep the cp.async kernels; so
    does an sm_80 GPU, and CONVKERNELS_TMA=0 (to compare the two on one GPU)."""
    dense = ConvCase(False, (1, 32, 6, 6), (32, 32, 3, 3), kwargs=dict(padding=1))
    assert not any(TMA_KERNEL in k for k in passes_of(dense, torch.float32, False)["fprop"])
    previous = simt.set_float32_precision("3xtf32")
    try:
        assert not any(TMA_KERNEL in k for k in passes_of(dense, torch.float32, False)["fprop"])
    finally:
        simt.set_float32_precision(previous)
    several_taps = ConvCase(False, (1, 16, 6, 6), (32, 16, 3, 3), kwargs=dict(padding=1))
    packed = ConvCase(False, (1, 32, 6, 6), (32, 4, 3, 3), kwargs=dict(padding=1, groups=8))
    stride_9 = ConvCase(False, (1, 32, 19, 19), (32, 32, 1, 1), kwargs=dict(stride=9))
    for case in (several_taps, packed, stride_9):
        fprop = passes_of(case, torch.bfloat16, False)["fprop"]
        assert any(KERNEL in k for k in fprop) and not any(TMA_KERNEL in k for k in fprop), (case, fprop)
    with simt.arch("sm_80"):
        assert not any(TMA_KERNEL in k for k in passes_of(dense, torch.bfloat16, False)["fprop"])
    os.environ["CONVKERNELS_TMA"] = "0"
    try:
        fprop = passes_of(dense, torch.bfloat16, False)["fprop"]
    finally:
        del os.environ["CONVKERNELS_TMA"]
    assert any("WarpgroupMma" in k for k in fprop) and not any(TMA_KERNEL in k for k in fprop)
    assert on_tma(passes_of(dense, torch.bfloat16, False)["fprop"])


@pytest.mark.parametrize("dtype,tf32", TYPES, ids=TYPE_IDS)
@pytest.mark.parametrize("case", TMA_EDGES, ids=str)
def test_edges_match_float64_reference(case, dtype, tf32):
    with tf32_allowed(tf32):
        assert_matches_torch(simt, case, dtype=dtype, memory_format=torch.channels_last, tf32=tf32)


@pytest.mark.parametrize("case", [TMA_EDGES[1], TMA_EDGES[4]], ids=str)
def test_tf32_stages_are_rounded_to_nearest_ties_away(case):
    """A tensor copy lands float32 as it is and wgmma would truncate it to TF32: the consumers round
    each landed stage in place first, so allow_tf32 means what it means on the other kernels
    (operands halfway between TF32 numbers tell rounding from truncation)."""
    passes = passes_of(case, torch.float32, True)
    assert on_tma(passes["fprop"]) and any(TMA_KERNEL in k for k in passes["dgrad"])
    assert_tf32_follows_allow_tf32(simt, case)


def test_nchw_operands():
    assert_matches_torch(simt, TMA_EDGES[1], dtype=torch.float16)


@pytest.mark.parametrize("case", [TMA_EDGES[1], TMA_EDGES[6]], ids=str)
@pytest.mark.parametrize("order", ["reversed", "random:7"])
def test_permuted_schedules(case, order):
    with simt.schedule(order):
        assert_matches_torch(simt, case, dtype=torch.bfloat16, memory_format=torch.channels_last)


def test_persistent_blocks_take_many_tiles_through_the_stage_ring():
    """1x1, 64 -> 96 channels at 2 x 32 x 32 pixels: 16 tiles of 128 pixels over the emulated GPU's
    4 blocks, two 64-byte chunks a tile: each block runs 8 stages through its ring of 6, on into the
    next tile while the last one's rows are stored."""
    assert_matches_torch(simt, ConvCase(False, (2, 64, 32, 32), (96, 64, 1, 1)), dtype=torch.bfloat16,
                         memory_format=torch.channels_last, backward=False)


def test_long_k_runs_the_ring_round_many_times():
    """640 channels of a 3x3 filter: 90 stages a tile through a ring of 8 (64 outputs: the narrow
    tile), each use of a stage one phase of its barriers later."""
    assert_matches_torch(simt, ConvCase(False, (1, 640, 4, 4), (64, 640, 3, 3), kwargs=dict(padding=1)),
                         dtype=torch.bfloat16, memory_format=torch.channels_last, backward=False)


def test_aligned_shape_counters():
    """1x1, 64 -> 128 channels, 16x16 pixels, bfloat16: boxes of 16 x 8 pixels, 2 tiles of 2
    stages (one a 64-byte chunk of channels), each 2 m64n128k16 wgmmas a warpgroup: the GEMM's
    256 x 128 x 64 products once (256 m64n8 slices). The copies read the input once and the
    filters once a tile: (256 x 128 + 2 x 128 x 128) bytes in 32-byte sectors, 2 copies a stage.
    No thread loads from global memory (no bias); the epilogue stores whole 16-sector rows
    without bank conflicts."""
    x = torch.randn(1, 64, 16, 16).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(128, 64, 1, 1).to(torch.bfloat16)
    with simt.counters() as launched:
        y = simt.conv2d(x, w)
    (name, counters), = launched.items()
    assert TMA_KERNEL in name
    assert counters.wgmma_m64n8 == 256 * 128 * 64 // (64 * 8 * 16) == 256
    assert counters.mma_16816 == 0
    assert counters.bulk_copies == 2 * 2 * 2
    assert counters.bulk_copy_sectors == (256 * 128 + 2 * 128 * 128) // 32
    assert counters.global_load_requests == 0
    assert counters.global_store_sectors == 256 * 128 * 2 // 32 == 16 * counters.global_store_requests
    assert counters.shared_bank_conflicts == 0
    expected = torch.nn.functional.conv2d(x.double(), w.double())
    bound = torch.nn.functional.conv2d(x.double().abs(), w.double().abs())
    assert ((y.double() - expected).abs() <= 2 ** -7 * bound + 2 ** -7 * expected.abs()).all()


def test_a_box_holds_the_pixels_of_several_small_images():
    """7x7 outputs of 4 images: a 128-row tile is a box of 7 x 7 pixels of 2 images (98 rows): 2
    tiles, as 196 consecutive GEMM rows would take; 9 taps a tile, 2 copies a stage."""
    x = torch.randn(4, 32, 7, 7).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(32, 32, 3, 3).to(torch.bfloat16)
    with simt.counters() as launched:
        simt.conv2d(x, w, padding=1)
    (name, counters), = launched.items()
    assert TMA_KERNEL in name
    assert counters.bulk_copies == 2 * 9 * 2
