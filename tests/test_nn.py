"""convkernels.nn: torch's Conv2d and ConvTranspose2d as drop-in replacements, and every member of
the convolution family computing what its docstring says, checked in float64 against torch."""
import copy
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convkernels
from convkernels import nn as cknn

DOUBLE = dict(dtype=torch.float64)


def assert_same_function(ours, theirs, input, **forward_kwargs):
    """ours and theirs give the same output, and the same gradients with respect to the input and
    to every parameter, for a random output gradient."""
    inputs = [input.clone().requires_grad_(), input.clone().requires_grad_()]
    outputs = [layer(x, **forward_kwargs) for layer, x in zip((ours, theirs), inputs)]
    torch.testing.assert_close(outputs[0], outputs[1])
    assert outputs[0].stride() == outputs[1].stride()
    grad_output = torch.randn_like(outputs[1])
    grads = [torch.autograd.grad(out, [x, *layer.parameters()], grad_output)
             for out, x, layer in zip(outputs, inputs, (ours, theirs))]
    torch.testing.assert_close(grads[0], grads[1])


def build_both(ours_cls, theirs_cls, *args, **kwargs):
    """Our layer and torch's, constructed from the same random state."""
    seed = int(torch.randint(2**31, ()))
    torch.manual_seed(seed)
    ours = ours_cls(*args, **kwargs, **DOUBLE)
    torch.manual_seed(seed)
    return ours, theirs_cls(*args, **kwargs, **DOUBLE)


def assert_state_dicts_interchangeable(ours, theirs):
    state = {k: torch.randn_like(v) for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state)
    theirs.load_state_dict(ours.state_dict())
    assert ours.state_dict().keys() == state.keys()
    for key, value in theirs.state_dict().items():
        assert torch.equal(value, state[key])


# ------------------------------------------------------------------------------------------------
# Drop-in layers

CONV2D_ARGS = [
    (4, 6, 3, dict()),
    (4, 6, 3, dict(stride=2, padding=1)),
    (4, 6, (3, 2), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), bias=False)),
    (4, 6, 3, dict(padding="same", dilation=2)),
    (4, 6, 4, dict(padding="valid", groups=2)),
    (4, 8, 3, dict(padding=1, groups=4)),
    (4, 6, 3, dict(padding=(1, 2), padding_mode="reflect")),
    (4, 6, 3, dict(padding=2, stride=2, padding_mode="replicate")),
    (4, 6, 3, dict(padding=(2, 1), padding_mode="circular", groups=2)),
    (4, 6, 4, dict(padding="same", padding_mode="reflect")),
]


@pytest.mark.parametrize("in_channels, out_channels, kernel_size, kwargs", CONV2D_ARGS, ids=str)
@pytest.mark.parametrize("layout", ["batched", "unbatched", "channels_last"])
def test_conv2d_is_torchs_conv2d(in_channels, out_channels, kernel_size, kwargs, layout):
    """Same initialisation, repr, state_dict, output and gradients as torch.nn.Conv2d."""
    ours, theirs = build_both(cknn.Conv2d, nn.Conv2d, in_channels, out_channels, kernel_size,
                              **kwargs)
    assert isinstance(ours, nn.Conv2d)
    assert repr(ours) == repr(theirs)
    for (name, p), (torch_name, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == torch_name and torch.equal(p, q)
    assert_state_dicts_interchangeable(ours, theirs)
    input = torch.randn(2, in_channels, 11, 9, **DOUBLE)
    if layout == "unbatched":
        input = input[0]
    elif layout == "channels_last":
        input = input.contiguous(memory_format=torch.channels_last)
    assert_same_function(ours, theirs, input)


CONV_TRANSPOSE2D_ARGS = [
    (4, 6, 3, dict()),
    (4, 6, 3, dict(stride=2, padding=1, output_padding=1)),
    (4, 6, (2, 3), dict(stride=(3, 2), padding=(0, 1), dilation=(2, 1), bias=False)),
    (4, 6, 3, dict(stride=2, groups=2, dilation=2, output_padding=(1, 0))),
]


@pytest.mark.parametrize("in_channels, out_channels, kernel_size, kwargs", CONV_TRANSPOSE2D_ARGS,
                         ids=str)
@pytest.mark.parametrize("unbatched", [False, True])
def test_conv_transpose2d_is_torchs_conv_transpose2d(in_channels, out_channels, kernel_size,
                                                     kwargs, unbatched):
    """Same initialisation, repr, state_dict, output and gradients as torch.nn.ConvTranspose2d."""
    ours, theirs = build_both(cknn.ConvTranspose2d, nn.ConvTranspose2d, in_channels, out_channels,
                              kernel_size, **kwargs)
    assert isinstance(ours, nn.ConvTranspose2d)
    assert repr(ours) == repr(theirs)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(p, q)
    assert_state_dicts_interchangeable(ours, theirs)
    input = torch.randn(2, in_channels, 5, 7, **DOUBLE)
    assert_same_function(ours, theirs, input[0] if unbatched else input)


@pytest.mark.parametrize("output_size", [[13, 13], [2, 6, 15, 14], [14, 15]])
def test_conv_transpose2d_output_size_selects_the_output_padding(output_size):
    """forward(input, output_size) picks the output padding as torch does (strides 3 and 2 allow
    heights 13 to 15 and widths 13 to 14 here), with torch's error outside that range."""
    ours, theirs = build_both(cknn.ConvTranspose2d, nn.ConvTranspose2d, 4, 6, 3, stride=(3, 2),
                              padding=1)
    input = torch.randn(2, 4, 5, 7, **DOUBLE)
    if output_size == [14, 15]:
        with pytest.raises(ValueError) as expected:
            theirs(input, output_size=output_size)
        with pytest.raises(ValueError, match=re.escape(str(expected.value))):
            ours(input, output_size=output_size)
    else:
        assert_same_function(ours, theirs, input, output_size=output_size)
        assert ours(input, output_size=output_size).shape[-2:] == tuple(output_size[-2:])


def test_conv_transpose2d_rejects_padding_modes_as_torch_does():
    with pytest.raises(ValueError, match='Only "zeros" padding mode is supported'):
        cknn.ConvTranspose2d(4, 6, 3, padding_mode="reflect")


# ------------------------------------------------------------------------------------------------
# Single convolutions of the family

def test_depthwise_filters_each_channel_with_its_own_filters():
    """Output channel c * multiplier + m is input channel c convolved with its m-th filter."""
    channels, multiplier = 3, 2
    layer = cknn.DepthwiseConv2d(channels, (3, 5), multiplier, stride=2, padding=(1, 2),
                                 dilation=(2, 1), **DOUBLE)
    assert layer.weight.shape == (channels * multiplier, 1, 3, 5)
    assert layer.multiplier == multiplier and layer.groups == channels
    x = torch.randn(2, channels, 12, 10, **DOUBLE)
    out = layer(x)
    for c in range(channels):
        for m in range(multiplier):
            k = c * multiplier + m
            expected = F.conv2d(x[:, c:c + 1], layer.weight[k:k + 1], layer.bias[k:k + 1],
                                stride=2, padding=(1, 2), dilation=(2, 1))
            torch.testing.assert_close(out[:, k:k + 1], expected)


@pytest.mark.parametrize("padding_mode", ["reflect", "circular"])
def test_depthwise_padding_modes(padding_mode):
    layer = cknn.DepthwiseConv2d(4, 3, 2, padding=1, padding_mode=padding_mode, **DOUBLE)
    reference = nn.Conv2d(4, 8, 3, padding=1, groups=4, padding_mode=padding_mode, **DOUBLE)
    reference.load_state_dict(layer.state_dict())
    assert_same_function(layer, reference, torch.randn(2, 4, 7, 6, **DOUBLE))


def test_pointwise_is_a_linear_layer_over_channels():
    """A 1x1 convolution applies nn.Linear(in, out) to the channel vector of every pixel."""
    linear = nn.Linear(5, 7, **DOUBLE)
    layer = cknn.PointwiseConv2d(5, 7, **DOUBLE)
    assert layer.weight.shape == (7, 5, 1, 1)
    with torch.no_grad():
        layer.weight.copy_(linear.weight[:, :, None, None])
        layer.bias.copy_(linear.bias)
    x = torch.randn(3, 5, 6, 4, **DOUBLE)
    torch.testing.assert_close(layer(x), linear(x.movedim(1, -1)).movedim(-1, 1))
    assert cknn.PointwiseConv2d(5, 7, bias=False).bias is None


def test_shuffled_group_conv_is_a_grouped_conv_then_a_channel_shuffle():
    layer = cknn.ShuffledGroupConv2d(6, 9, 3, groups=3, stride=2, padding=1, **DOUBLE)
    assert isinstance(layer, nn.Conv2d) and layer.weight.shape == (9, 2, 3, 3)
    x = torch.randn(2, 6, 9, 8, **DOUBLE)
    expected = F.channel_shuffle(F.conv2d(x, layer.weight, layer.bias, 2, 1, groups=3), 3)
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(layer(x[1]), expected[1])  # unbatched: channels are dimension 0
    reference = nn.Conv2d(6, 9, 3, stride=2, padding=1, groups=3, **DOUBLE)
    reference.load_state_dict(layer.state_dict())
    assert repr(layer) == repr(reference).replace("Conv2d", "ShuffledGroupConv2d", 1)


CHANNEL_SHUFFLE_INPUTS = {
    "4d": lambda: torch.randn(2, 12, 5, 4, **DOUBLE),
    "channels_last": lambda: torch.randn(2, 12, 5, 4, **DOUBLE).contiguous(
        memory_format=torch.channels_last),
    "non_contiguous": lambda: torch.randn(2, 5, 12, 8, **DOUBLE).transpose(1, 2)[..., ::2],
    "3d_is_n_c_l": lambda: torch.randn(3, 12, 7, **DOUBLE),
    "5d": lambda: torch.randn(2, 12, 3, 2, 2, **DOUBLE),
    "channels_last_3d": lambda: torch.randn(2, 12, 3, 2, 2, **DOUBLE).contiguous(
        memory_format=torch.channels_last_3d),
    "empty_batch": lambda: torch.randn(0, 12, 3, 3, **DOUBLE),
}


@pytest.mark.parametrize("groups", [1, 2, 3, 4, 12])
@pytest.mark.parametrize("make_input", CHANNEL_SHUFFLE_INPUTS.values(),
                         ids=CHANNEL_SHUFFLE_INPUTS.keys())
def test_channel_shuffle_is_torchs(make_input, groups):
    """Values, strides (memory format) and gradient equal torch.nn.functional.channel_shuffle's."""
    x = make_input().requires_grad_()
    ours, theirs = convkernels.channel_shuffle(x, groups), F.channel_shuffle(x, groups)
    assert torch.equal(ours, theirs) and ours.stride() == theirs.stride()
    grad = torch.randn_like(theirs)
    (grad_ours,), (grad_theirs,) = (torch.autograd.grad(y, x, grad) for y in (ours, theirs))
    assert torch.equal(grad_ours, grad_theirs)


def test_channel_shuffle_interleaves_the_groups():
    """Channel g * (C / groups) + i moves to i * groups + g."""
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert convkernels.channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert convkernels.channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


@pytest.mark.parametrize("shape, groups", [((2, 6, 3, 3), 4), ((6, 3, 3), 2), ((2, 6, 3, 3), 0),
                                           ((2, 6), 3), ((6,), 2)])
def test_channel_shuffle_errors_are_torchs(shape, groups):
    x = torch.randn(shape)
    with pytest.raises(RuntimeError) as expected:
        F.channel_shuffle(x, groups)
    with pytest.raises(RuntimeError, match=re.escape(str(expected.value))):
        convkernels.channel_shuffle(x, groups)


def test_channel_shuffle_layer_is_torchs():
    ours, theirs = cknn.ChannelShuffle(3), nn.ChannelShuffle(3)
    assert repr(ours) == repr(theirs) == "ChannelShuffle(groups=3)"
    assert ours.extra_repr() == theirs.extra_repr()
    x = torch.randn(2, 9, 4, 4)
    assert torch.equal(ours(x), theirs(x))


# ------------------------------------------------------------------------------------------------
# Composite (factorised) layers: each is the dense convolution with the kernel its docstring gives

FACTORISED_ARGS = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(1, 2), padding=(2, 1), dilation=(2, 1)),
    dict(padding="same", dilation=2),
    dict(padding=1, padding_mode="reflect"),
    dict(padding=(1, 2), padding_mode="circular"),
    dict(padding=1, stride=2, padding_mode="replicate", bias=False),
]


def dense_reference(in_channels, out_channels, weight, bias, kwargs):
    """torch's Conv2d with the given kernel and the composite layer's arguments."""
    kwargs = {k: v for k, v in kwargs.items() if k != "bias"}
    reference = nn.Conv2d(in_channels, out_channels, weight.shape[2:], bias=bias is not None,
                          **kwargs, **DOUBLE)
    with torch.no_grad():
        reference.weight.copy_(weight)
        if bias is not None:
            reference.bias.copy_(bias)
    return reference


def assert_is_dense_conv(layer, weight, bias, in_channels, kwargs, input_size=(11, 10)):
    """layer(x) equals torch's dense convolution with ``weight`` (its output size included)."""
    reference = dense_reference(in_channels, weight.shape[0], weight, bias, kwargs)
    torch.testing.assert_close(layer.dense_weight(), weight)
    x = torch.randn(2, in_channels, *input_size, **DOUBLE)
    torch.testing.assert_close(layer(x), reference(x))


def parameter_count(layer):
    return sum(p.numel() for p in layer.parameters())


@pytest.mark.parametrize("kwargs", FACTORISED_ARGS, ids=str)
def test_spatially_separable_is_a_dense_conv_with_separable_filters(kwargs):
    """Filter o is the outer product of its columns vertical[o, c] and its row horizontal[o]:
    C*K*kH + K*kW weights instead of C*K*kH*kW, for any stride, padding, dilation, padding_mode."""
    layer = cknn.SpatiallySeparableConv2d(4, 6, (3, 2), **kwargs, **DOUBLE)
    vertical, horizontal = layer.vertical.weight, layer.horizontal.weight
    assert vertical.shape == (6, 4, 3, 1) and horizontal.shape == (6, 1, 1, 2)
    assert parameter_count(layer) == 4 * 6 * 3 + 6 * 2 + (6 if kwargs.get("bias", True) else 0)
    weight = torch.einsum("ocr,os->ocrs", vertical[..., 0], horizontal[:, 0, 0])
    assert_is_dense_conv(layer, weight, layer.horizontal.bias, 4, kwargs)


def test_spatially_separable_groups():
    layer = cknn.SpatiallySeparableConv2d(6, 4, 3, padding=1, groups=2, **DOUBLE)
    assert layer.vertical.weight.shape == (4, 3, 3, 1)
    weight = layer.vertical.weight * layer.horizontal.weight
    reference = dense_reference(6, 4, weight, layer.horizontal.bias, dict(padding=1, groups=2))
    x = torch.randn(2, 6, 8, 7, **DOUBLE)
    torch.testing.assert_close(layer(x), reference(x))


@pytest.mark.parametrize("kwargs", FACTORISED_ARGS, ids=str)
def test_from_conv2d_reproduces_a_separable_kernel_exactly(kwargs):
    """A Conv2d whose filters are outer products (a column per channel times one row) is
    reproduced to float64 rounding, its arguments and bias included."""
    columns, rows = torch.randn(6, 4, 3, 1, **DOUBLE), torch.randn(6, 1, 1, 3, **DOUBLE)
    conv = dense_reference(4, 6, columns * rows, torch.randn(6, **DOUBLE), kwargs)
    layer = cknn.SpatiallySeparableConv2d.from_conv2d(conv)
    assert (layer.horizontal.bias is None) == (conv.bias is None)
    torch.testing.assert_close(layer.dense_weight(), conv.weight, rtol=1e-12, atol=1e-12)
    x = torch.randn(2, 4, 11, 10, **DOUBLE)
    torch.testing.assert_close(layer(x), conv(x), rtol=1e-12, atol=1e-12)


def test_from_weight_is_the_best_rank1_approximation():
    """For a non-separable kernel each filter, as a (C*kH) x kW matrix, becomes its truncated SVD:
    the Frobenius error is the norm of the dropped singular values (Eckart-Young)."""
    weight = torch.randn(5, 3, 4, 4, **DOUBLE)
    layer = cknn.SpatiallySeparableConv2d.from_weight(weight, padding=1)
    u, s, vh = torch.linalg.svd(weight.reshape(5, 12, 4), full_matrices=False)
    best = (s[:, 0, None, None] * u[:, :, :1] * vh[:, :1, :]).reshape(weight.shape)
    torch.testing.assert_close(layer.dense_weight(), best, rtol=1e-12, atol=1e-12)
    error = (weight - layer.dense_weight()).flatten(1).norm(dim=1)
    torch.testing.assert_close(error, s[:, 1:].norm(dim=1))
    assert (error > 0.1).all()  # really not separable
    x = torch.randn(2, 3, 9, 9, **DOUBLE)
    torch.testing.assert_close(layer(x), F.conv2d(x, best, padding=1))


@pytest.mark.parametrize("kwargs", FACTORISED_ARGS, ids=str)
def test_depthwise_separable_is_depthwise_then_pointwise(kwargs):
    """C*M*kH*kW + C*M*K weights; the result is the pointwise conv of the depthwise conv."""
    layer = cknn.DepthwiseSeparableConv2d(4, 6, 3, multiplier=2, **kwargs, **DOUBLE)
    depthwise, pointwise = layer.depthwise.weight, layer.pointwise.weight
    assert depthwise.shape == (8, 1, 3, 3) and pointwise.shape == (6, 8, 1, 1)
    assert layer.depthwise.bias is None
    assert parameter_count(layer) == 4 * 2 * (9 + 6) + (6 if kwargs.get("bias", True) else 0)
    x = torch.randn(2, 4, 11, 10, **DOUBLE)
    spatial = {k: v for k, v in kwargs.items() if k != "bias"}
    expected = dense_reference(4, 8, depthwise, None, dict(spatial, groups=4))(x)
    expected = F.conv2d(expected, pointwise, layer.pointwise.bias)
    torch.testing.assert_close(layer(x), expected)
    weight = torch.einsum("ocm,cmrs->ocrs", pointwise.view(6, 4, 2), depthwise.view(4, 2, 3, 3))
    assert_is_dense_conv(layer, weight, layer.pointwise.bias, 4, kwargs)


@pytest.mark.parametrize("kwargs", FACTORISED_ARGS, ids=str)
def test_flattened_is_lateral_vertical_horizontal(kwargs):
    """Jin et al. 2014: a 1x1 across channels, then kH x 1 and 1 x kW per channel; C*K + K*kH +
    K*kW weights instead of C*K*kH*kW; each filter is the rank-1 tensor lateral (x) vertical (x)
    horizontal, and the output has the size of the dense convolution's (no 32x34 + 34x32)."""
    layer = cknn.FlattenedConv2d(4, 6, (3, 5), **kwargs, **DOUBLE)
    lateral, vertical = layer.lateral.weight, layer.vertical.weight
    horizontal = layer.horizontal.weight
    assert lateral.shape == (6, 4, 1, 1)
    assert vertical.shape == (6, 1, 3, 1) and horizontal.shape == (6, 1, 1, 5)
    assert parameter_count(layer) == 4 * 6 + 6 * 3 + 6 * 5 + (6 if kwargs.get("bias", True) else 0)
    weight = torch.einsum("oc,or,os->ocrs", lateral[:, :, 0, 0], vertical[:, 0, :, 0],
                          horizontal[:, 0, 0, :])
    assert_is_dense_conv(layer, weight, layer.horizontal.bias, 4, kwargs, input_size=(13, 17))


@pytest.mark.parametrize("layer", [
    cknn.SpatiallySeparableConv2d(4, 6, 3, padding=1),
    cknn.DepthwiseSeparableConv2d(4, 6, 3, padding=1),
    cknn.FlattenedConv2d(4, 6, 3, padding=1),
], ids=type)
def test_composites_take_unbatched_input_and_print_their_parts(layer):
    x = torch.randn(2, 4, 7, 6)
    torch.testing.assert_close(layer(x[1]), layer(x)[1])
    for name, part in layer.named_children():
        assert f"({name}): {part!r}" in repr(layer)


def test_every_layer_documents_what_it_computes():
    for name in cknn.__all__:
        assert len(getattr(cknn, name).__doc__ or "") > 80, name


def test_layers_compile_to_one_graph():
    model = nn.Sequential(
        cknn.ShuffledGroupConv2d(8, 8, 3, groups=4, padding=1, padding_mode="reflect"),
        cknn.SpatiallySeparableConv2d(8, 8, 3, padding=1),
        cknn.DepthwiseSeparableConv2d(8, 8, 3, stride=2, padding=1),
        cknn.FlattenedConv2d(8, 4, 3, padding=1),
        cknn.ConvTranspose2d(4, 2, 2, stride=2)).double()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 8, 8, 8, **DOUBLE, requires_grad=True)
    torch.testing.assert_close(compiled(x), model(x))
    (grad,), (expected,) = (torch.autograd.grad(f(x).square().sum(), x) for f in (compiled, model))
    torch.testing.assert_close(grad, expected)


def test_a_deep_copy_shares_the_functions_as_it_shares_torchs():
    """Anything holding convkernels.conv2d deep-copies (a module, torch's OpInfo database)."""
    holder = {"conv2d": convkernels.conv2d, "conv_transpose2d": convkernels.conv_transpose2d}
    copied = copy.deepcopy(holder)
    x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    torch.testing.assert_close(copied["conv2d"](x, w), F.conv2d(x, w))
    assert copy.deepcopy(F.conv2d) is F.conv2d
