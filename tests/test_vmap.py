"""torch.func over our ops gives torch's results: vmap with any operand vmapped, per-sample
gradients (vmap of grad, as Opacus-style private training computes them), batched gradients
(is_grads_batched=True), jacrev, jacfwd and hessian."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import grad, hessian, jacfwd, jacrev, vmap

import convkernels

# (name, ours, torch's, per-example input shape, weight shape, bias length, kwargs)
CONVS = [
    ("conv2d", convkernels.conv2d, F.conv2d, (2, 4, 7, 6), (6, 2, 3, 2), 6,
     dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)),
    ("unbatched_conv2d", convkernels.conv2d, F.conv2d, (3, 6, 5), (4, 3, 3, 3), 4, dict(padding="same")),
    ("depthwise_conv2d", convkernels.conv2d, F.conv2d, (2, 3, 6, 6), (6, 1, 3, 3), 6,
     dict(padding=1, groups=3)),
    ("shuffled_conv2d", convkernels.shuffled_conv2d,
     lambda *a, **k: F.channel_shuffle(F.conv2d(*a, **k), k["groups"]), (2, 4, 6, 6), (6, 2, 3, 3), 6,
     dict(padding=1, groups=2)),
    ("conv_transpose2d", convkernels.conv_transpose2d, F.conv_transpose2d, (2, 4, 4, 5), (4, 3, 3, 2), 6,
     dict(stride=2, padding=(1, 0), output_padding=(1, 0), groups=2, dilation=(1, 2))),
]
CONV_IDS = [c[0] for c in CONVS]
CONV_PARAMS = "name,ours,theirs,input_shape,weight_shape,bias_length,kwargs"
# in_dims of (input, weight, bias); None: shared by every example.
IN_DIMS = [(0, None, None), (1, None, None), (None, 0, None), (None, None, 0), (0, 0, 0),
           (2, 1, None), (None, 0, 0)]
BATCH = 3


def _vmapped(shape, dim):
    shape = list(shape)
    if dim is not None:
        shape.insert(dim, BATCH)
    return torch.randn(shape, dtype=torch.float64)


@pytest.mark.parametrize(CONV_PARAMS, CONVS, ids=CONV_IDS)
@pytest.mark.parametrize("in_dims", IN_DIMS, ids=str)
def test_vmap_matches_torch(name, ours, theirs, input_shape, weight_shape, bias_length, kwargs,
                            in_dims):
    operands = [_vmapped(shape, dim)
                for shape, dim in zip((input_shape, weight_shape, (bias_length,)), in_dims)]
    got = vmap(lambda *args: ours(*args, **kwargs), in_dims=in_dims)(*operands)
    expected = vmap(lambda *args: theirs(*args, **kwargs), in_dims=in_dims)(*operands)
    torch.testing.assert_close(got, expected)


def _model(conv2d, conv_transpose2d):
    """A small network of both convolutions and its loss: what per-sample gradients train."""
    def loss(params, image, target):
        hidden = conv2d(image, params["w1"], params["b1"], padding=1, groups=2).tanh()
        out = conv_transpose2d(hidden, params["w2"], params["b2"], stride=2, output_padding=1)
        return ((out - target) ** 2).mean()
    return loss


def _parameters():
    return {name: torch.randn(shape, dtype=torch.float64)
            for name, shape in [("w1", (6, 2, 3, 3)), ("b1", (6,)), ("w2", (6, 2, 3, 3)), ("b2", (2,))]}


@pytest.mark.parametrize("backend", ["cpu", "simt"])
def test_per_sample_gradients_match_torch(backend):
    impl = convkernels if backend == "cpu" else pytest.importorskip("convkernels.simt")
    params = _parameters()
    images, targets = torch.randn(5, 4, 6, 7, dtype=torch.float64), torch.randn(5, 2, 14, 16, dtype=torch.float64)

    def per_sample(loss):
        return vmap(grad(loss), in_dims=(None, 0, 0))(params, images, targets)

    got = per_sample(_model(impl.conv2d, impl.conv_transpose2d))
    expected = per_sample(_model(F.conv2d, F.conv_transpose2d))
    torch.testing.assert_close(got, expected)


def test_ensemble_of_models_by_vmap_over_parameters():
    """vmap over stacked parameters (model ensembling): every operand of every op vmapped."""
    stacked = {name: torch.stack([p, 2 * p]) for name, p in _parameters().items()}
    images, targets = torch.randn(2, 5, 4, 6, 7, dtype=torch.float64), torch.randn(2, 5, 2, 14, 16, dtype=torch.float64)

    def ensemble_gradients(loss):
        return vmap(grad(loss))(stacked, images, targets)

    got = ensemble_gradients(_model(convkernels.conv2d, convkernels.conv_transpose2d))
    expected = ensemble_gradients(_model(F.conv2d, F.conv_transpose2d))
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(CONV_PARAMS, CONVS, ids=CONV_IDS)
def test_is_grads_batched_matches_torch(name, ours, theirs, input_shape, weight_shape, bias_length,
                                        kwargs):
    operands = [torch.randn(shape, dtype=torch.float64, requires_grad=True)
                for shape in (input_shape, weight_shape, (bias_length,))]

    def batched_gradients(conv):
        out = conv(*operands, **kwargs)
        grad_outputs = torch.randn(BATCH, *out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        return torch.autograd.grad(out, operands, grad_outputs, is_grads_batched=True)

    torch.testing.assert_close(batched_gradients(ours), batched_gradients(theirs))


@pytest.mark.parametrize(CONV_PARAMS, CONVS, ids=CONV_IDS)
@pytest.mark.parametrize("transform", [jacrev, jacfwd])
def test_jacobians_match_torch(name, ours, theirs, input_shape, weight_shape, bias_length, kwargs,
                               transform):
    operands = [torch.randn(shape, dtype=torch.float64)
                for shape in (input_shape, weight_shape, (bias_length,))]
    got = transform(lambda *args: ours(*args, **kwargs), argnums=(0, 1, 2))(*operands)
    expected = transform(lambda *args: theirs(*args, **kwargs), argnums=(0, 1, 2))(*operands)
    torch.testing.assert_close(got, expected)


def test_hessian_of_a_loss_matches_torch():
    params = _parameters()
    image, target = torch.randn(1, 4, 4, 3, dtype=torch.float64), torch.randn(1, 2, 10, 8, dtype=torch.float64)

    def hessian_of(loss):
        return hessian(loss)(params, image, target)

    got = hessian_of(_model(convkernels.conv2d, convkernels.conv_transpose2d))
    expected = hessian_of(_model(F.conv2d, F.conv_transpose2d))
    torch.testing.assert_close(got, expected)


def test_gradcheck_with_batched_gradients():
    """gradcheck's own vmap checks: batched backward, batched forward AD, and of the backward."""
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w, b: convkernels.conv2d(x, w, b, padding=1, groups=2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b), check_batched_grad=True, check_forward_ad=True,
                                    check_batched_forward_grad=True)
    assert torch.autograd.gradgradcheck(fn, (x, w, b), check_batched_grad=True)


def test_nested_reverse_mode_matches_torch():
    """jacrev of jacrev: the inner level's op runs inside the outer level's node, in grad mode."""
    params = _parameters()
    image, target = torch.randn(1, 4, 4, 3, dtype=torch.float64), torch.randn(1, 2, 10, 8, dtype=torch.float64)

    def second_derivative(loss):
        return jacrev(jacrev(loss, argnums=1), argnums=0)(params, image, target)["b1"]

    got = second_derivative(_model(convkernels.conv2d, convkernels.conv_transpose2d))
    expected = second_derivative(_model(F.conv2d, F.conv_transpose2d))
    torch.testing.assert_close(got, expected)
