"""The CUDA kernels, run on the CPU by the SIMT emulator, equal torch.nn.functional: forward and
both gradients, every dtype, float32 in TF32 or not as torch.backends.cudnn.allow_tf32 says, NCHW
and channels_last, and under permuted thread schedules."""
import pytest
import torch

from conv_grid import SHUFFLED, full_grid, grid
from conv_reference import ConvCase, assert_matches_torch, assert_tf32_follows_allow_tf32

simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built (no CUDA headers)")

CONV = full_grid(transposed=False)
CONV_T = full_grid(transposed=True)


@pytest.mark.parametrize("case", CONV + CONV_T + SHUFFLED, ids=str)
def test_matches_torch_in_float64(case):
    assert_matches_torch(simt, case)


# Shapes that exercise the kernels' tiling: several tiles per dimension, partial edge tiles,
# channel counts that are not multiples of the tile width, a large depthwise filter.
TILED = [
    ConvCase(False, (2, 12, 19, 21), (20, 12, 3, 3), kwargs=dict(padding=1)),
    ConvCase(False, (1, 16, 9, 9), (16, 4, 3, 3), kwargs=dict(padding=1, groups=4, stride=2)),
    ConvCase(False, (2, 8, 11, 13), (24, 8, 1, 1)),
    ConvCase(False, (1, 4, 36, 35), (8, 1, 3, 3), kwargs=dict(padding=1, groups=4)),
    ConvCase(False, (1, 2, 20, 20), (2, 1, 31, 31), kwargs=dict(padding=15, groups=2)),
    ConvCase(False, (1, 3, 25, 22), (3, 1, 13, 13), kwargs=dict(padding=6, groups=3, stride=2)),
    ConvCase(True, (2, 10, 6, 7), (10, 6, 2, 2), kwargs=dict(stride=2)),
    ConvCase(True, (1, 4, 9, 8), (4, 1, 5, 5), kwargs=dict(stride=2, padding=2, output_padding=1, groups=4)),
]


@pytest.mark.parametrize("case", TILED, ids=str)
def test_tiled_shapes_match_torch(case):
    assert_matches_torch(simt, case)


LOW_PRECISION = grid(12, transposed=False, seed=11) + grid(12, transposed=True, seed=12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", LOW_PRECISION + TILED, ids=str)
def test_low_precision_matches_float64_reference(case, dtype):
    assert_matches_torch(simt, case, dtype=dtype)


# float32 follows torch.backends.cudnn.allow_tf32, as torch's convolutions on a GPU do: with it, the
# implicit GEMMs multiply operands rounded to TF32 on tensor cores (each product within
# TF32_PRODUCT_ERROR of exact); without it, float32's own tolerance holds.
@pytest.mark.parametrize("allow_tf32", [False, True], indirect=True, ids=["float32", "tf32"])
@pytest.mark.parametrize("case", LOW_PRECISION + TILED, ids=str)
def test_float32_matches_float64_reference_in_float32_or_tf32(case, allow_tf32):
    assert_matches_torch(simt, case, dtype=torch.float32, tf32=allow_tf32)


# float16/bfloat16 run the implicit GEMMs on tensor cores (csrc/cuda/tensor_core_accumulators.cuh).
# Shapes that give each of fprop, dgrad and wgrad, on the wide and the narrow tile, GEMM M, N and K
# that leave warp tiles and k-steps partly filled: several N tiles (72 channels), dgrad with more
# than 16 channels per group (wide) and stride phases, a 1x1 wide tile, wgrad with M = 180 and a
# split reduction.
TENSOR_CORE = [
    ConvCase(False, (2, 20, 9, 10), (72, 20, 3, 3), kwargs=dict(padding=1)),
    ConvCase(False, (1, 24, 10, 13), (40, 24, 1, 1)),
    ConvCase(False, (1, 34, 9, 11), (20, 17, 3, 3), kwargs=dict(stride=2, padding=1, groups=2)),
    ConvCase(True, (2, 20, 5, 6), (20, 24, 3, 3), kwargs=dict(stride=2, padding=1, output_padding=1)),
    ConvCase(False, (3, 6, 21, 22), (14, 3, 2, 3), bias=False, kwargs=dict(dilation=2, groups=2)),
]


@pytest.mark.parametrize("order", ["forward", "random:3"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", TENSOR_CORE, ids=str)
def test_tensor_core_tiles_match_float64_reference(case, dtype, order):
    with simt.schedule(order):
        assert_matches_torch(simt, case, dtype=dtype)


@pytest.mark.parametrize("allow_tf32", [True], indirect=True)
@pytest.mark.parametrize("order", ["forward", "random:3"])
@pytest.mark.parametrize("case", TENSOR_CORE, ids=str)
def test_tf32_tensor_core_tiles_match_float64_reference(case, order, allow_tf32):
    with simt.schedule(order):
        assert_matches_torch(simt, case, dtype=torch.float32, tf32=True)


@pytest.mark.parametrize("case", TENSOR_CORE[:1] + TENSOR_CORE[3:], ids=str)
def test_tf32_follows_allow_tf32_and_rounds_ties_away(case):
    assert_tf32_follows_allow_tf32(simt, case)


@pytest.mark.parametrize("case", LOW_PRECISION + TILED, ids=str)
def test_channels_last(case):
    assert_matches_torch(simt, case, memory_format=torch.channels_last)


@pytest.mark.parametrize("order", ["reversed", "random:1", "random:2"])
@pytest.mark.parametrize("case", TILED + LOW_PRECISION, ids=str)
def test_permuted_thread_schedule_gives_the_same_answer(case, order):
    """A missing __syncthreads passes under the forward order but not under these."""
    with simt.schedule(order):
        assert_matches_torch(simt, case)


def test_schedule_is_restored_and_validated():
    with simt.schedule("reversed"):
        assert torch.ops.convkernels_simt.set_schedule("reversed") == "reversed"
    assert torch.ops.convkernels_simt.set_schedule("forward") == "forward"
    with pytest.raises(RuntimeError, match="SIMT_SCHEDULE"):
        torch.ops.convkernels_simt.set_schedule("sideways")


def test_gradcheck_and_gradgradcheck():
    x = torch.randn(1, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w, b: simt.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d", "conv2d_weight"])
def test_opcheck(name):
    args = {
        "conv2d": (torch.randn(2, 4, 7, 6), torch.randn(6, 2, 3, 3), torch.randn(6), [2, 1], [1, 0], [1, 2], 2),
        "conv_transpose2d": (torch.randn(1, 4, 5, 5), torch.randn(4, 3, 3, 3), torch.randn(6), [2, 2], [1, 1],
                             [1, 0], 2, [1, 1]),
        "conv2d_weight": (torch.randn(2, 4, 7, 6), torch.randn(2, 6, 4, 2), [6, 2, 3, 3], [2, 2], [1, 0], [1, 1], 2),
    }[name]
    args = [a.requires_grad_() if isinstance(a, torch.Tensor) else a for a in args]
    torch.library.opcheck(getattr(torch.ops.convkernels_simt, name), args)
