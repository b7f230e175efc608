"""conv2d and conv_transpose2d on the CPU kernels equal torch.nn.functional in float64: output,
grad_input, grad_weight and grad_bias, over the whole grid of argument forms, in both layouts (the
CPU has separate NCHW and channels_last kernels)."""
import pytest
import torch

import convkernels
from conv_grid import SHUFFLED, full_grid
from conv_reference import ConvCase, assert_matches_torch

CONV = full_grid(transposed=False)
CONV_T = full_grid(transposed=True)
LAYOUTS = pytest.mark.parametrize("layout", [None, torch.channels_last], ids=["nchw", "channels_last"])
# The channels_last kernels read the weight in the memory format it comes in (a model converted to
# channels_last has channels_last weights, a freshly built one contiguous ones): both, beside NCHW.
LAYOUTS_AND_WEIGHTS = pytest.mark.parametrize(
    "layout,weight_layout",
    [(None, None), (torch.channels_last, None), (torch.channels_last, torch.contiguous_format)],
    ids=["nchw", "channels_last", "channels_last-nchw_weight"])


@pytest.mark.parametrize("case", CONV, ids=str)
@LAYOUTS
def test_conv2d_matches_torch(case, layout):
    assert_matches_torch(convkernels, case, memory_format=layout)


@pytest.mark.parametrize("case", CONV_T, ids=str)
@LAYOUTS
def test_conv_transpose2d_matches_torch(case, layout):
    assert_matches_torch(convkernels, case, memory_format=layout)


def test_grid_covers_every_argument_form():
    """The sampled grid really contains each feature the specification lists."""
    cases = CONV + CONV_T
    kernels = {c.weight_shape[2:] for c in cases}
    assert {(k, k) for k in range(1, 8)} <= kernels and any(r != s for r, s in kernels)
    assert {1, 2, 3} <= {s for c in cases for s in c.kwargs["stride"]}
    assert {1, 2, 3} <= {d for c in cases for d in c.kwargs["dilation"]}
    assert {"same", "valid"} <= {c.kwargs["padding"] for c in CONV if isinstance(c.kwargs["padding"], str)}
    assert {(1, 2)} <= {c.kwargs["stride"] for c in cases}
    groups = {(c.kwargs["groups"], c.weight_shape[0], c.weight_shape[1]) for c in CONV}
    assert any(g == 1 for g, _, _ in groups) and any(g in (2, 4) and cg > 1 for g, _, cg in groups)
    assert any(cg == 1 and k == g for g, k, cg in groups), "depthwise"
    assert any(cg == 1 and k > g > 1 for g, k, cg in groups), "depthwise with multiplier"
    assert {True, False} == {c.bias for c in cases}
    assert {0, 1, 3} <= {c.input_shape[0] for c in cases if len(c.input_shape) == 4}
    assert any(len(c.input_shape) == 3 for c in cases), "unbatched"
    assert any(any(op) for c in CONV_T for op in [c.kwargs["output_padding"]]), "output_padding"


# Shapes where a kernel's blocking has edges: channel counts and widths that are not multiples of
# any vector or tile size, kernels wider than the input, stride larger than the kernel.
EDGE_CASES = [
    ConvCase(False, (2, 5, 13, 17), (7, 5, 3, 3), kwargs=dict(padding=1)),
    ConvCase(False, (1, 3, 4, 4), (2, 3, 7, 7), kwargs=dict(padding=3)),
    ConvCase(False, (2, 4, 9, 9), (4, 4, 1, 1), kwargs=dict(stride=3)),
    ConvCase(False, (1, 9, 5, 37), (9, 1, 3, 3), kwargs=dict(groups=9, padding=1, stride=2)),
    ConvCase(False, (1, 2, 33, 35), (2, 1, 13, 11), kwargs=dict(groups=2, padding=(6, 5))),
    ConvCase(False, (1, 16, 1, 1), (8, 16, 1, 1)),
    ConvCase(False, (2, 3, 20, 1), (5, 3, 3, 1), kwargs=dict(padding=(1, 0), dilation=(3, 1))),
    ConvCase(True, (2, 6, 5, 7), (6, 3, 2, 2), kwargs=dict(stride=2)),
    ConvCase(True, (1, 4, 3, 3), (4, 2, 5, 5), kwargs=dict(stride=3, padding=2, output_padding=2)),
    ConvCase(True, (1, 6, 4, 4), (6, 1, 3, 3), kwargs=dict(groups=3, stride=2, dilation=2, output_padding=1)),
    ConvCase(True, (2, 8, 7, 5), (8, 5, 1, 1)),
]


@pytest.mark.parametrize("case", EDGE_CASES, ids=str)
@LAYOUTS_AND_WEIGHTS
def test_tile_edges_match_torch(case, layout, weight_layout):
    assert_matches_torch(convkernels, case, memory_format=layout, weight_memory_format=weight_layout)


@pytest.mark.parametrize("case", SHUFFLED, ids=str)
@LAYOUTS
def test_shuffled_conv2d_is_conv_then_channel_shuffle(case, layout):
    assert_matches_torch(convkernels, case, memory_format=layout)


# Channel counts that fill several SIMD vectors and leave a tail (the channels_last kernels
# vectorise over channels), rows wider than a register tile, and each family's special paths.
WIDE_CASES = [
    ConvCase(False, (2, 37, 11, 13), (70, 37, 3, 3), kwargs=dict(padding=1)),
    ConvCase(False, (1, 20, 15, 17), (33, 20, 3, 3), kwargs=dict(stride=2, dilation=2, padding=2)),
    ConvCase(False, (2, 48, 9, 10), (64, 24, 3, 3), kwargs=dict(groups=2, padding=1)),
    ConvCase(False, (1, 64, 8, 9), (64, 4, 3, 3), kwargs=dict(groups=16, padding=1, stride=2)),
    ConvCase(False, (2, 32, 7, 10), (32, 8, 3, 3), kwargs=dict(groups=4, padding=1)),
    ConvCase(False, (1, 64, 9, 7), (64, 16, 3, 3), kwargs=dict(groups=4, padding=1, stride=2)),
    ConvCase(True, (1, 32, 6, 5), (32, 2, 3, 3), kwargs=dict(groups=16, stride=2, padding=1)),
    ConvCase(False, (2, 70, 9, 7), (45, 70, 1, 1)),
    ConvCase(False, (2, 40, 9, 9), (72, 40, 1, 1), bias=False, kwargs=dict(stride=2)),
    ConvCase(False, (2, 48, 6, 7), (48, 16, 1, 1), kwargs=dict(groups=3), shuffled=True),
    ConvCase(False, (2, 40, 13, 12), (40, 1, 3, 3), kwargs=dict(groups=40, padding=1)),
    ConvCase(False, (1, 58, 11, 14), (58, 1, 3, 3), kwargs=dict(groups=58, stride=2, padding=1)),
    ConvCase(False, (2, 24, 12, 19), (24, 1, 5, 5), kwargs=dict(groups=24, padding=4, dilation=2)),
    ConvCase(False, (1, 20, 9, 9), (40, 1, 3, 3), kwargs=dict(groups=20, padding=1)),
    ConvCase(False, (1, 20, 9, 9), (40, 1, 3, 3), kwargs=dict(groups=20, padding=1), shuffled=True),
    ConvCase(False, (1, 96, 14, 14), (96, 1, 7, 7), kwargs=dict(groups=96, padding=3)),
    ConvCase(True, (2, 40, 5, 6), (40, 24, 2, 2), kwargs=dict(stride=2)),
    # Filters that tile the input (stride = filter size): a ConvNeXt-style patchifying convolution
    # and a non-square transposed one, whose input gradient / forward is one matrix product.
    ConvCase(False, (2, 20, 12, 16), (36, 20, 4, 4), kwargs=dict(stride=4)),
    ConvCase(True, (1, 24, 5, 4), (24, 40, 3, 2), kwargs=dict(stride=(3, 2))),
    ConvCase(True, (1, 33, 6, 5), (33, 17, 3, 3), kwargs=dict(stride=2, padding=1, output_padding=1)),
    ConvCase(True, (1, 32, 6, 7), (32, 1, 4, 4), kwargs=dict(groups=32, stride=2, padding=1)),
]


@LAYOUTS_AND_WEIGHTS
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("case", WIDE_CASES, ids=str)
def test_wide_channels_match_torch(case, dtype, layout, weight_layout):
    assert_matches_torch(convkernels, case, dtype=dtype, memory_format=layout,
                         weight_memory_format=weight_layout)


# First layers: a few input channels (RGB) and a larger filter, which the channels_last forward
# computes as a 1x1 convolution over the im2col, made in chunks of output rows (the last case
# needs several chunks of its 100 rows: 7x7x3 taps of 100 pixels a row).
FIRST_LAYERS = [
    ConvCase(False, (2, 3, 17, 17), (8, 3, 3, 3), kwargs=dict(stride=2, padding=1)),
    ConvCase(False, (1, 3, 23, 21), (20, 3, 7, 7), bias=False, kwargs=dict(stride=2, padding=3)),
    ConvCase(False, (2, 3, 16, 20), (40, 3, 4, 4), kwargs=dict(stride=4)),
    ConvCase(False, (1, 2, 11, 12), (5, 2, 3, 3), kwargs=dict(padding=2, dilation=2)),
    ConvCase(False, (2, 3, 100, 100), (8, 3, 7, 7), kwargs=dict(padding=3)),
]


@LAYOUTS_AND_WEIGHTS
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", FIRST_LAYERS, ids=str)
def test_first_layers_match_torch(case, dtype, layout, weight_layout):
    assert_matches_torch(convkernels, case, dtype=dtype, memory_format=layout,
                         weight_memory_format=weight_layout)


@LAYOUTS
def test_large_depthwise_kernel_matches_torch(layout):
    """RepLKNet's 31x31 depthwise convolution, the size the large-kernel paths exist for."""
    case = ConvCase(False, (1, 4, 20, 20), (4, 1, 31, 31), kwargs=dict(groups=4, padding=15))
    assert_matches_torch(convkernels, case, memory_format=layout)


# Depthwise filters wider than the output row, where most taps of a pixel fall in the padding
# (RepLKNet's 13x13 on 7x7 and 27x27 on 14x14 maps, and a 15x15 filter reaching part of a map),
# and filters of 13 columns and more on wider maps: rows split in several tiles of pixels, channels
# past a whole vector, a flat 3x17 filter, padding beyond the filter's reach, and the stride-1
# conv_transpose2d whose forward is such a convolution; and ConvNeXt's 7x7 on a 7x7 map.
FILTER_WIDER_THAN_ROW = [
    ConvCase(False, (2, 5, 7, 7), (5, 1, 13, 13), kwargs=dict(groups=5, padding=6)),
    ConvCase(False, (1, 4, 10, 12), (8, 1, 15, 15), kwargs=dict(groups=4, padding=3)),
    ConvCase(False, (2, 3, 14, 14), (3, 1, 27, 27), kwargs=dict(groups=3, padding=13)),
    ConvCase(False, (1, 20, 9, 31), (20, 1, 13, 13), kwargs=dict(groups=20, padding=6)),
    ConvCase(False, (2, 6, 5, 40), (6, 1, 3, 17), bias=False, kwargs=dict(groups=6, padding=(1, 8))),
    ConvCase(False, (1, 3, 5, 6), (3, 1, 13, 13), kwargs=dict(groups=3, padding=15)),
    ConvCase(True, (2, 18, 6, 9), (18, 1, 15, 15), kwargs=dict(groups=18, padding=5)),
    ConvCase(False, (2, 24, 7, 7), (24, 1, 7, 7), kwargs=dict(groups=24, padding=3)),
]


@LAYOUTS
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", FILTER_WIDER_THAN_ROW, ids=str)
def test_depthwise_filter_wider_than_row_matches_torch(case, dtype, layout):
    assert_matches_torch(convkernels, case, dtype=dtype, memory_format=layout)


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (7, 1), (13, 1), (3, 2)])
@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
@LAYOUTS
def test_non_finite_inputs_reach_exactly_the_outputs_that_read_them(kernel, dilation, transposed, layout):
    """An Inf and a NaN in the input make Inf/NaN where torch has them, and nowhere else."""
    x = torch.randn(2, 3, 16, 15, dtype=torch.float64)
    x[0, 1, 2, 3], x[1, 2, 14, 9] = float("inf"), float("nan")
    x = x.contiguous(memory_format=layout or torch.contiguous_format)
    w = torch.randn(3, 1, kernel, kernel, dtype=torch.float64)
    op = "conv_transpose2d" if transposed else "conv2d"
    kwargs = dict(padding=dilation * (kernel // 2), dilation=dilation, groups=3)
    ours = getattr(convkernels, op)(x, w, **kwargs)
    theirs = getattr(torch.nn.functional, op)(x, w, **kwargs)
    assert torch.equal(ours.isnan(), theirs.isnan()) and torch.equal(ours.isinf(), theirs.isinf())
    finite = theirs.isfinite()
    torch.testing.assert_close(ours[finite], theirs[finite])


@LAYOUTS
def test_deterministic(layout):
    """The same inputs give bitwise the same output and gradients (no atomics, fixed order)."""
    x = torch.randn(2, 8, 15, 15).contiguous(memory_format=layout or torch.contiguous_format)
    x.requires_grad_()
    w = torch.randn(8, 4, 3, 3, requires_grad=True)
    runs = []
    for _ in range(2):
        y = convkernels.conv2d(x, w, padding=1, groups=2)
        runs.append((y, *torch.autograd.grad(y.square().sum(), [x, w])))
    for a, b in zip(*runs):
        assert torch.equal(a, b)
