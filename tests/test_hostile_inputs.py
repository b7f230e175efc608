"""Hostile inputs, each held to what torch 2.14.1 does with it: filters that reach far past the
input, empty channels and images, arguments whose sizes overflow int64, non-finite filter taps that
meet only padding. Inputs that once crashed the process run in a child process."""
import contextlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import convkernels
import convkernels.simt
from conv_reference import ConvCase, assert_matches_torch

BACKENDS = pytest.mark.parametrize("impl", [convkernels, convkernels.simt], ids=["cpu", "simt"])
LAYOUTS = pytest.mark.parametrize("layout", [None, torch.channels_last], ids=["nchw", "channels_last"])
BIG = 2 ** 63 - 1


def run_in_child(code):
    """Runs `code` in a fresh interpreter with convkernels imported; a crash fails the test."""
    prelude = "import torch, torch.nn.functional as F, convkernels\n"
    child = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, f"child exited with {child.returncode}:\n{child.stderr[-2000:]}"


# --- filters whose taps miss the input entirely along a dimension --------------------------------

REACH_PAST_THE_INPUT = [
    ConvCase(False, (1, 2, 5, 2), (4, 2, 7, 7), kwargs=dict(padding="same", dilation=(1, 3))),
    ConvCase(True, (2, 3, 12, 7), (3, 4, 11, 11),
             kwargs=dict(padding=(11, 9), output_padding=(1, 0), dilation=(3, 2))),
    ConvCase(False, (2, 3, 1, 2), (5, 3, 3, 5), kwargs=dict(padding=4, dilation=(3, 2))),
]


@BACKENDS
@LAYOUTS
@pytest.mark.parametrize("case", REACH_PAST_THE_INPUT, ids=str)
def test_taps_that_never_meet_the_input_get_zero_weight_gradient(case, layout, impl):
    assert_matches_torch(impl, case, memory_format=layout)


# --- no input channels ---------------------------------------------------------------------------

@BACKENDS
@pytest.mark.parametrize("kernel,padding,groups", [(1, 0, 1), (3, 0, 1), (3, 1, 1), (3, 1, 2)])
@pytest.mark.parametrize("bias", [False, True], ids=["no_bias", "bias"])
def test_no_input_channels_give_torchs_empty_output_and_gradients(kernel, padding, groups, bias, impl):
    """torch: an input of 0 channels gives (N, 0, P, Q) whatever the weight's K; the gradients are
    empty, and the bias's zero."""
    x = torch.randn(2, 0, 9, 13, dtype=torch.float64)
    w = torch.randn(4, 0, kernel, kernel, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64) if bias else None
    kwargs = dict(stride=2, padding=padding, groups=groups)
    ours = [t if t is None else t.clone().requires_grad_() for t in (x, w, b)]
    theirs = [t if t is None else t.clone().requires_grad_() for t in (x, w, b)]
    out, expected = impl.conv2d(*ours, **kwargs), F.conv2d(*theirs, **kwargs)
    assert out.shape == expected.shape and out.stride() == expected.stride()
    out.sum().backward()
    expected.sum().backward()
    for mine, want in zip(ours, theirs):
        if want is not None:
            assert mine.grad.shape == want.grad.shape and torch.equal(mine.grad, want.grad)


def test_no_input_channels_with_a_1x1_filter_does_not_crash():
    """Once a division by zero (SIGFPE) in the pointwise kernels."""
    run_in_child("""
        x = torch.randn(1, 0, 6, 6, requires_grad=True)
        w = torch.randn(4, 0, 1, 1, requires_grad=True)
        out = convkernels.conv2d(x, w)
        assert out.shape == F.conv2d(x, w).shape == (1, 0, 6, 6)
        out.sum().backward()
        assert x.grad.shape == x.shape and w.grad.shape == w.shape
    """)


@pytest.mark.parametrize("weight_shape,bias", [((3, 0, 3, 3), None), ((3, 0, 3, 3), 0)])
def test_conv_transpose2d_rejects_an_empty_weight(weight_shape, bias):
    x, w = torch.randn(1, 3, 6, 6), torch.randn(weight_shape)
    b = None if bias is None else torch.randn(bias)
    with pytest.raises(RuntimeError):
        F.conv_transpose2d(x, w, b)
    with pytest.raises(RuntimeError, match="weight"):
        convkernels.conv_transpose2d(x, w, b)


def test_a_weight_without_filters_is_rejected():
    with pytest.raises(RuntimeError):
        F.conv2d(torch.randn(1, 3, 6, 6), torch.randn(0, 3, 3, 3))
    with pytest.raises(RuntimeError, match="groups=1.*at least 1"):
        convkernels.conv2d(torch.randn(1, 3, 6, 6), torch.randn(0, 3, 3, 3))


# --- empty images --------------------------------------------------------------------------------

EMPTY_IMAGES = [  # (op, input shape, weight shape, kwargs)
    ("conv2d", (1, 3, 0, 6), (4, 3, 3, 3), dict(padding=2)),
    ("conv2d", (1, 3, 6, 0), (4, 3, 1, 1), dict(padding=1)),
    ("conv_transpose2d", (1, 3, 0, 6), (3, 4, 3, 3), {}),
    ("conv_transpose2d", (1, 3, 6, 0), (3, 4, 3, 3), dict(padding=1)),
]


@pytest.mark.parametrize("op,input_shape,weight_shape,kwargs", EMPTY_IMAGES)
def test_an_empty_image_is_rejected_unless_batch_or_channels_are_empty(op, input_shape, weight_shape, kwargs):
    x, w = torch.randn(input_shape), torch.randn(weight_shape)
    with pytest.raises(RuntimeError, match="Only zero batch or zero channel inputs are supported"):
        getattr(F, op)(x, w, **kwargs)
    with pytest.raises(RuntimeError, match="Only zero batch or zero channel inputs are supported"):
        getattr(convkernels, op)(x, w, **kwargs)


@pytest.mark.parametrize("input_shape,weight_shape", [((0, 3, 0, 6), (4, 3, 3, 3)), ((1, 0, 0, 6), (4, 0, 3, 3))])
def test_an_empty_image_in_an_empty_batch_or_without_channels_is_accepted(input_shape, weight_shape):
    x, w = torch.randn(input_shape), torch.randn(weight_shape)
    assert convkernels.conv2d(x, w, padding=2).shape == F.conv2d(x, w, padding=2).shape


# --- arguments whose sizes overflow int64 --------------------------------------------------------

x6 = torch.randn(1, 2, 6, 6)
w3 = torch.randn(4, 2, 3, 3)
wt3 = torch.randn(2, 4, 3, 3)

# Each rejected by torch (with a RuntimeError, or where torch's own arithmetic wraps, a crash or an
# allocation of exabytes): ours must raise a RuntimeError before touching memory.
OVERFLOWING = {
    "padding 2^63-1": ("conv2d", (x6, w3), dict(padding=BIG)),
    "padding 2^62": ("conv2d", (x6, w3), dict(padding=2 ** 62)),
    "padding 2^61": ("conv2d", (x6, w3), dict(padding=2 ** 61)),
    "dilation 2^63-1": ("conv2d", (x6, w3), dict(dilation=BIG)),
    "dilation 2^62": ("conv2d", (x6, w3), dict(dilation=2 ** 62)),
    "groups 2^62": ("conv2d", (x6, w3), dict(groups=2 ** 62)),
    "groups 2^62, no channels": ("conv2d", (torch.randn(1, 0, 6, 6), torch.randn(0, 4, 3, 3)),
                                 dict(groups=2 ** 62)),
    "transposed padding 2^61": ("conv_transpose2d", (x6, wt3), dict(padding=2 ** 61)),
    "transposed dilation 2^62": ("conv_transpose2d", (x6, wt3), dict(dilation=2 ** 62)),
    "transposed dilation 2^63-1": ("conv_transpose2d", (x6, wt3), dict(dilation=BIG)),
    "output_padding 2^62": ("conv_transpose2d", (x6, wt3), dict(stride=2 ** 62 + 1, output_padding=2 ** 62)),
    "output_padding 2^62 below dilation": ("conv_transpose2d", (x6, wt3),
                                           dict(dilation=(1, 2 ** 62 + 1), output_padding=(0, 2 ** 62))),
    "transposed stride 2^62": ("conv_transpose2d", (x6, wt3), dict(stride=2 ** 62)),
    "transposed stride 2^26": ("conv_transpose2d", (x6, wt3), dict(stride=2 ** 26)),
    "transposed output size 0": ("conv_transpose2d", (x6, wt3), dict(padding=4)),
    "transposed output width 0": ("conv_transpose2d", (torch.randn(1, 2, 1, 1), torch.randn(2, 4, 1, 1)),
                                  dict(padding=(0, 1))),
}


def test_overflowing_arguments_raise_runtime_errors():
    """In a child: once a SIGSEGV (dilation 2^63-1) and std::bad_alloc (MemoryError)."""
    run_in_child(f"""
        import pytest, sys
        sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r})
        from test_hostile_inputs import OVERFLOWING
        for name, (op, args, kwargs) in OVERFLOWING.items():
            with pytest.raises(RuntimeError):
                getattr(convkernels, op)(*args, **kwargs)
            print(name, "rejected", flush=True)
    """)


@pytest.mark.parametrize("op,input_shape,stride", [
    ("conv2d", (1, 2, 6, 6), 2 ** 26),
    ("conv2d", (1, 2, 6, 6), 2 ** 31),
    ("conv2d", (1, 2, 6, 6), (2 ** 62, 1)),
    ("conv2d", (1, 2, 6, 6), BIG),
    ("conv_transpose2d", (1, 2, 1, 1), 2 ** 26),
    ("conv_transpose2d", (1, 2, 1, 3), (2 ** 30, 2)),
])
def test_a_stride_past_the_input_gives_torchs_single_output_position(op, input_shape, stride):
    """A stride only separates output positions; with one of them any stride gives torch's
    answer (once std::bad_alloc, from buffers sized by the stride). torch's conv_transpose2d
    truncates strides to int32, so its strides stay below 2^31 here."""
    x = torch.randn(input_shape, dtype=torch.float64)
    w = torch.randn(4 if op == "conv2d" else 2, 2 if op == "conv2d" else 4, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(getattr(convkernels, op)(x, w, stride=stride),
                               getattr(F, op)(x, w, stride=stride))


FAR_PADDING = [
    ConvCase(False, (1, 2, 6, 6), (4, 2, 3, 3), kwargs=dict(padding=2 ** 20, dilation=2 ** 20)),
    ConvCase(False, (1, 4, 6, 5), (4, 1, 3, 3), kwargs=dict(padding=(2 ** 20, 1), dilation=(2 ** 20, 1), groups=4)),
    ConvCase(False, (1, 2, 6, 6), (4, 2, 3, 3), kwargs=dict(padding=2 ** 30, dilation=2 ** 30, stride=2 ** 30)),
    ConvCase(True, (1, 4, 6, 6), (4, 2, 3, 3), kwargs=dict(padding=2 ** 20, dilation=2 ** 20)),
]


@BACKENDS
@pytest.mark.parametrize("case", FAR_PADDING, ids=str)
def test_taps_that_meet_only_padding_cost_no_memory(case, impl):
    """With a padding and dilation of 2^20, only the middle tap meets the input: the kernels must
    not stage the padding the others span (once rows of 2^21 elements, std::bad_alloc)."""
    assert_matches_torch(impl, case)


@BACKENDS
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),  # make sanitize
                    reason="AddressSanitizer's operator new aborts where it cannot allocate, "
                           "rather than throw std::bad_alloc")
def test_padding_the_kernels_cannot_stage_raises_torchs_out_of_memory_error(impl):
    """A padding of 2^20 with a dilation of 2^20 + 1: the first filter row reads only padding, yet
    it is not cut off (the padding left would differ between the two sides, which the kernels take
    as the same), so a kernel stages rows 2^21 long. Where that cannot be allocated: torch's
    out-of-memory error (a RuntimeError) naming the geometry, not a bare std::bad_alloc."""
    x, w = torch.randn(1, 2, 6, 6, dtype=torch.float64), torch.randn(4, 2, 3, 3, dtype=torch.float64)
    kwargs = dict(padding=2 ** 20, dilation=2 ** 20 + 1)
    try:
        out = impl.conv2d(x, w, **kwargs)
    except torch.OutOfMemoryError as error:
        assert "padding (1048576, 1048576), dilation (1048577, 1048577)" in str(error)
    else:
        torch.testing.assert_close(out, F.conv2d(x, w, **kwargs))


def test_padding_above_torchs_bound_names_the_bound():
    with pytest.raises(RuntimeError, match="padding to be at most 4611686018427387903"):
        convkernels.conv2d(x6, w3, padding=2 ** 62)


# --- non-finite filter taps that meet only padding -----------------------------------------------

@BACKENDS
@LAYOUTS
@pytest.mark.parametrize("groups,channels", [(1, 2), (1, 16), (2, 4)])
@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("dim", [2, 3], ids=["row", "column"])
def test_an_inf_tap_that_meets_only_padding_contributes_nothing(dim, op, groups, channels, layout, impl):
    """Padded taps contribute nothing, not 0 * Inf = NaN, as in torch's direct kernels (oneDNN's
    float32 ones; its im2col path gives NaN): the result is that of the filter without the tap."""
    x = torch.randn(2, channels, 2, 2, dtype=torch.float64).contiguous(memory_format=layout or torch.contiguous_format)
    filters = (8, channels // groups) if op == "conv2d" else (channels, 8 // groups)
    w = torch.randn(*filters, 5, 5, dtype=torch.float64)
    # With padding 2 on a 2 x 2 image, filter row (column) 0 reads only padding.
    expected = getattr(F, op)(x, w.index_fill(dim, torch.tensor([0]), 0), padding=2, groups=groups)
    out = getattr(impl, op)(x, w.index_fill(dim, torch.tensor([0]), float("inf")), padding=2, groups=groups)
    torch.testing.assert_close(out, expected)


# --- launch grids past CUDA's limits -------------------------------------------------------------

@contextlib.contextmanager
def max_grid(x, y, z):
    """The emulator's largest launch grid lowered to (x, y, z): small shapes then need the splits
    that, on a GPU, grids past (2^31 - 1, 65535, 65535) blocks need."""
    previous = torch.ops.convkernels_simt.set_max_grid([x, y, z])
    try:
        yield
    finally:
        torch.ops.convkernels_simt.set_max_grid(previous)


SPLIT_GRIDS = [
    ConvCase(False, (2, 6, 9, 9), (42, 2, 3, 3), kwargs=dict(groups=3, stride=2, padding=1)),
    ConvCase(False, (2, 4, 7, 7), (4, 4, 1, 1)),  # pointwise
    ConvCase(True, (2, 6, 5, 5), (6, 8, 3, 3), kwargs=dict(groups=3, stride=(3, 2), padding=1)),
    ConvCase(False, (2, 5, 9, 8), (10, 1, 3, 3), kwargs=dict(groups=5, padding=1)),  # depthwise
    ConvCase(True, (1, 4, 6, 7), (4, 1, 3, 3), kwargs=dict(groups=4, stride=2)),
]


@pytest.mark.parametrize("limits", [(1, 1, 1), (2, 1, 2), (3, 2, 1)], ids=str)
@pytest.mark.parametrize("case", SPLIT_GRIDS, ids=str)
def test_grids_past_the_launch_limits_are_split(case, limits):
    with max_grid(*limits):
        assert_matches_torch(convkernels.simt, case)


def test_a_stride_past_the_image_launches_only_phases_that_hold_pixels():
    """general_dgrad has a GEMM per stride phase: with a stride of 2^20 (padding making the output
    3 pixels wide) only the 3 phases that hold pixels are launched; once 2^40 blocks."""
    case = ConvCase(True, (1, 2, 2, 2), (2, 3, 1, 1), kwargs=dict(stride=2 ** 20, padding=2 ** 19 - 1))
    assert_matches_torch(convkernels.simt, case)
