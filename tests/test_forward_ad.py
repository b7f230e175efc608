"""Forward-mode AD (torch.autograd.forward_ad, torch.func.jvp) carries tangents through our ops
exactly as through torch's: a convolution is bilinear in (input, weight) and affine in the bias, so
its tangent is conv(t_input, weight) + conv(input, t_weight) + t_bias."""
import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F

import convkernels

# (name, ours, torch's, input shape, weight shape, bias length, kwargs)
CONVS = [
    ("conv2d", convkernels.conv2d, F.conv2d, (2, 4, 7, 6), (6, 2, 3, 2), 6,
     dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)),
    ("shuffled_conv2d", convkernels.shuffled_conv2d,
     lambda *a, **k: F.channel_shuffle(F.conv2d(*a, **k), k["groups"]), (2, 4, 6, 6), (6, 2, 3, 3), 6,
     dict(padding=1, groups=2)),
    ("conv_transpose2d", convkernels.conv_transpose2d, F.conv_transpose2d, (2, 4, 4, 5), (4, 3, 3, 2), 6,
     dict(stride=2, padding=(1, 0), output_padding=(1, 0), groups=2, dilation=(1, 2))),
]
# Which of (input, weight, bias) carry a tangent.
TANGENTS = {"input": (True, False, False), "weight": (False, True, False),
            "bias": (False, False, True), "all": (True, True, True)}


def _operands(input_shape, weight_shape, bias_length, requires_grad=False):
    return [torch.randn(shape, dtype=torch.float64, requires_grad=requires_grad)
            for shape in (input_shape, weight_shape, (bias_length,))]


@pytest.mark.parametrize("name,ours,theirs,input_shape,weight_shape,bias_length,kwargs", CONVS,
                         ids=[c[0] for c in CONVS])
@pytest.mark.parametrize("moving", sorted(TANGENTS))
@pytest.mark.parametrize("requires_grad", [False, True], ids=["primal", "primal_requires_grad"])
@pytest.mark.parametrize("grad_enabled", [True, False], ids=["grad_mode", "no_grad"])
def test_forward_ad_tangent_matches_torch(name, ours, theirs, input_shape, weight_shape,
                                          bias_length, kwargs, moving, requires_grad, grad_enabled):
    primals = _operands(input_shape, weight_shape, bias_length, requires_grad)
    tangents = [torch.randn_like(p) if m else None for p, m in zip(primals, TANGENTS[moving])]

    def tangent_of(conv):
        with fwAD.dual_level(), torch.set_grad_enabled(grad_enabled):
            duals = [p if t is None else fwAD.make_dual(p, t) for p, t in zip(primals, tangents)]
            return fwAD.unpack_dual(conv(*duals, **kwargs))

    got, expected = tangent_of(ours), tangent_of(theirs)
    assert got.tangent is not None, "the tangent was dropped"
    torch.testing.assert_close(got.primal, expected.primal)
    torch.testing.assert_close(got.tangent, expected.tangent)


@pytest.mark.parametrize("name,ours,theirs,input_shape,weight_shape,bias_length,kwargs", CONVS,
                         ids=[c[0] for c in CONVS])
def test_func_jvp_matches_torch(name, ours, theirs, input_shape, weight_shape, bias_length, kwargs):
    primals = tuple(_operands(input_shape, weight_shape, bias_length))
    tangents = tuple(torch.randn_like(p) for p in primals)
    got = torch.func.jvp(lambda *args: ours(*args, **kwargs), primals, tangents)
    expected = torch.func.jvp(lambda *args: theirs(*args, **kwargs), primals, tangents)
    torch.testing.assert_close(got, expected)


# Small enough for finite differences of second order.
GRADCHECK_CASES = [
    ("conv2d", convkernels.conv2d, (1, 4, 4, 3), (4, 2, 2, 2), 4,
     dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)),
    ("shuffled_conv2d", convkernels.shuffled_conv2d, (1, 4, 3, 3), (4, 2, 2, 2), 4,
     dict(padding=1, groups=2)),
    ("conv_transpose2d", convkernels.conv_transpose2d, (1, 4, 2, 3), (4, 1, 2, 2), 2,
     dict(stride=2, padding=(1, 0), output_padding=(1, 0), groups=2, dilation=(1, 2))),
]


@pytest.mark.parametrize("name,ours,input_shape,weight_shape,bias_length,kwargs", GRADCHECK_CASES,
                         ids=[c[0] for c in GRADCHECK_CASES])
def test_forward_ad_and_forward_over_reverse_agree_with_finite_differences(
        name, ours, input_shape, weight_shape, bias_length, kwargs):
    """Forward over reverse differentiates the backward ops too: the tangents of conv2d_weight and
    of the transposed convolution that computes grad_input."""
    operands = _operands(input_shape, weight_shape, bias_length, requires_grad=True)
    fn = lambda *args: ours(*args, **kwargs)  # noqa: E731
    assert torch.autograd.gradcheck(fn, operands, check_forward_ad=True)
    assert torch.autograd.gradgradcheck(fn, operands, check_fwd_over_rev=True)
