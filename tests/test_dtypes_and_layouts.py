"""Low-precision dtypes, memory formats and non-contiguous inputs give torch's results."""
import pytest
import torch
import torch.nn.functional as F

import convkernels
from conv_grid import grid
from conv_reference import assert_matches_torch

CASES = grid(12, transposed=False, seed=11) + grid(12, transposed=True, seed=12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_low_precision_matches_float64_reference(case, dtype):
    """Half types accumulate in float32: the error is the output rounding, not the sum length."""
    assert_matches_torch(convkernels, case, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_channels_last_gives_torch_values_and_format(case, dtype):
    assert_matches_torch(convkernels, case, dtype=dtype, memory_format=torch.channels_last)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_non_contiguous_inputs(case):
    assert_matches_torch(convkernels, case, noncontiguous=True)


def test_channels_last_weight_alone_gives_channels_last_output():
    x = torch.randn(2, 4, 9, 9)
    w = torch.randn(6, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    y = convkernels.conv2d(x, w)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, w))


def test_float16_output_keeps_input_dtype():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float16)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float16)
    assert convkernels.conv2d(x, w).dtype == torch.float16
    assert convkernels.conv_transpose2d(x, w.transpose(0, 1).contiguous()).dtype == torch.float16


@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("batch", [2, 0])
@pytest.mark.parametrize("kernel", [3, 1])
@pytest.mark.parametrize("formats", ["xwg", "x", "w", "g", "xg"], ids=lambda f: f"channels_last_{f}")
def test_output_and_gradients_in_torchs_memory_format(transposed, batch, kernel, formats):
    """torch's gradients are channels_last when the input or the weight is (the weight alone for
    grad_weight of an empty batch), whatever the incoming gradient's layout. A 1x1 weight is
    both contiguous and channels_last."""
    def laid_out(t, name):
        return t.contiguous(memory_format=torch.channels_last if name in formats else torch.contiguous_format)

    x = laid_out(torch.randn(batch, 4, 6, 6), "x")
    w = laid_out(torch.randn(4, 4, kernel, kernel), "w")
    ours = convkernels.conv_transpose2d if transposed else convkernels.conv2d
    theirs = F.conv_transpose2d if transposed else F.conv2d

    def layouts(conv):
        x_, w_ = x.clone().requires_grad_(), w.clone().requires_grad_()
        y = conv(x_, w_)
        grads = torch.autograd.grad(y, (x_, w_), laid_out(torch.ones_like(y), "g"))
        # An empty tensor has no layout to speak of (an empty batch's grad_weight is not empty).
        return [(t.is_contiguous(), t.is_contiguous(memory_format=torch.channels_last))
                for t in (y, *grads) if t.numel()]

    assert layouts(ours) == layouts(theirs)


@pytest.mark.parametrize("formats", ["x", "g", "xg", ""], ids=lambda f: f"channels_last_{f or 'none'}")
@pytest.mark.parametrize("height", [5, 1], ids=["every_tap", "taps_cut"])
def test_weight_gradient_op_is_channels_last_for_channels_last_activations(formats, height):
    """conv2d_weight itself answers channels_last when either activation is channels_last (the
    layout its kernels write there, and torch's grad_weight for a channels_last input), also where
    taps that read only padding are cut off (one row high, padding 1: the kernels write the
    middle row of taps into the full gradient). The backward then hands it on in torch's format without a copy
    (test_output_and_gradients_in_torchs_memory_format)."""
    def laid_out(t, name):
        return t.contiguous(memory_format=torch.channels_last if name in formats else torch.contiguous_format)

    x = laid_out(torch.randn(2, 4, height, 6, dtype=torch.float64), "x")
    w = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    dy = laid_out(torch.randn(2, 6, height, 6, dtype=torch.float64), "g")
    ours = torch.ops.convkernels.conv2d_weight(x, dy, list(w.shape), [1, 1], [1, 1], [1, 1], 1)
    assert ours.is_contiguous(memory_format=torch.channels_last if formats else torch.contiguous_format)
    _, theirs, _ = torch.ops.aten.convolution_backward(dy, x, w, None, [1, 1], [1, 1], [1, 1], False,
                                                       [0, 0], 1, [False, True, False])
    if "x" in formats:
        assert ours.stride() == theirs.stride()
    torch.testing.assert_close(ours, theirs)
