"""The ops differentiate to any order, pass torch.library.opcheck and trace under torch.compile."""
import pytest
import torch
import torch.nn.functional as F

import convkernels

ops = torch.ops.convkernels


def _double(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


GRADCHECK_CASES = [
    # (input shape, weight shape, kwargs)
    ((2, 4, 6, 5), (6, 2, 3, 2), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)),
    ((1, 3, 5, 5), (6, 1, 3, 3), dict(padding=1, groups=3)),
    ((2, 3, 4, 4), (2, 3, 1, 1), dict()),
]


@pytest.mark.parametrize("input_shape,weight_shape,kwargs", GRADCHECK_CASES)
def test_conv2d_gradcheck_and_gradgradcheck(input_shape, weight_shape, kwargs):
    x, w, b = _double(*input_shape), _double(*weight_shape), _double(weight_shape[0])
    fn = lambda x, w, b: convkernels.conv2d(x, w, b, **kwargs)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def test_shuffled_conv2d_gradcheck_and_gradgradcheck():
    x, w, b = _double(2, 4, 5, 5), _double(6, 2, 3, 3), _double(6)
    fn = lambda x, w, b: convkernels.shuffled_conv2d(x, w, b, padding=1, groups=2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def test_conv_transpose2d_gradcheck_and_gradgradcheck():
    x, w, b = _double(2, 4, 3, 4), _double(4, 3, 3, 2), _double(6)
    kwargs = dict(stride=2, padding=(1, 0), output_padding=(1, 0), groups=2, dilation=(1, 2))
    fn = lambda x, w, b: convkernels.conv_transpose2d(x, w, b, **kwargs)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def test_gradient_penalty_matches_torch():
    """WGAN-GP differentiates the norm of an input gradient: second order through the conv."""
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)

    def penalty_grad(conv):
        y = conv(x, w, padding=1, stride=2)
        (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        return torch.autograd.grad(((gx.flatten(1).norm(dim=1) - 1) ** 2).mean(), w)[0]

    torch.testing.assert_close(penalty_grad(convkernels.conv2d), penalty_grad(F.conv2d))


OPCHECK_ARGS = {
    "conv2d": lambda: (torch.randn(2, 4, 7, 6), torch.randn(6, 2, 3, 3), torch.randn(6),
                       [2, 1], [1, 0], [1, 2], 2),
    "conv_transpose2d": lambda: (torch.randn(2, 4, 5, 5), torch.randn(4, 3, 3, 3), torch.randn(6),
                                 [2, 2], [1, 1], [1, 0], 2, [1, 1]),
    "conv2d_weight": lambda: (torch.randn(2, 4, 7, 6), torch.randn(2, 6, 4, 2), [6, 2, 3, 3],
                              [2, 2], [1, 0], [1, 1], 2),
    "conv2d_backward": lambda: (torch.randn(2, 6, 5, 4), torch.randn(2, 4, 7, 6), torch.randn(6, 2, 3, 3),
                                [1, 1], [0, 0], [1, 1], 2, False, [True, True, True]),
    "conv2d shuffled": lambda: (torch.randn(2, 4, 7, 6), torch.randn(6, 2, 3, 3), torch.randn(6),
                                [1, 1], [1, 1], [1, 1], 2, True),
    "conv_transpose2d_backward": lambda: (torch.randn(2, 6, 9, 9), torch.randn(2, 4, 5, 5),
                                          torch.randn(4, 3, 3, 3), [2, 2], [1, 1], [0, 0], 2, [1, 1],
                                          [True, True, False]),
}


@pytest.mark.parametrize("name", sorted(OPCHECK_ARGS))
@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_opcheck(name, requires_grad, channels_last):
    args = OPCHECK_ARGS[name]()
    args = [a.contiguous(memory_format=torch.channels_last) if channels_last and isinstance(a, torch.Tensor) and a.dim() == 4 else a
            for a in args]
    args = [a.requires_grad_(requires_grad) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
            for a in args]
    torch.library.opcheck(getattr(ops, name.split()[0]), args)


def test_torch_compile_fullgraph_forward_and_backward():
    def step(x, w, b):
        y = convkernels.conv2d(x, w, b, padding=1)
        return convkernels.conv_transpose2d(y.relu(), w, stride=2, output_padding=1)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    w = torch.randn(4, 4, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    expected = step(x, w, b)
    got = compiled(x, w, b)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(torch.autograd.grad(got.sum(), [x, w, b]),
                               torch.autograd.grad(expected.sum(), [x, w, b]))


def test_torch_compile_with_dynamic_shapes_compiles_once_for_every_size():
    from torch._dynamo.utils import counters

    w = _double(6, 4, 3, 3)

    def step(x):
        y = convkernels.conv2d(x, w, stride=2, padding=1)
        return convkernels.conv_transpose2d(y, w, stride=2, padding=1, output_padding=1).sin().sum()

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(step, dynamic=True, fullgraph=True, backend="aot_eager")
    # Sizes of 1 aside: torch.compile specialises on those itself.
    for batch, height, width in [(2, 9, 10), (3, 12, 7), (4, 16, 16)]:
        x = _double(batch, 4, height, width)
        got = compiled(x)
        (grad_x,) = torch.autograd.grad(got, [x])
        expected = F.conv_transpose2d(F.conv2d(x, w, stride=2, padding=1), w, stride=2, padding=1,
                                      output_padding=1).sin().sum()
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(grad_x, torch.autograd.grad(expected, [x])[0])
    assert counters["stats"]["unique_graphs"] == 1, "a new graph for a new input size"


def test_autocast_runs_in_the_autocast_dtype_like_torch():
    x = torch.randn(2, 4, 9, 9)
    w = torch.randn(6, 4, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = convkernels.conv2d(x, w, padding=1)
        theirs = F.conv2d(x, w, padding=1)
        kept = convkernels.conv2d(x.double(), w.double(), padding=1)
    assert ours.dtype == theirs.dtype == torch.bfloat16
    assert kept.dtype == torch.float64
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=2e-2, atol=2e-2)
