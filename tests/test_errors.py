"""Every argument torch rejects, we reject before touching memory: an error of the same type as
torch's, whose message names the offending argument."""
import pytest
import torch
import torch.nn.functional as F

import convkernels

x = torch.randn(2, 4, 8, 8)
w = torch.randn(6, 4, 3, 3)
wt = torch.randn(4, 3, 3, 3)  # conv_transpose2d weight: in_channels x out_channels/groups x R x S

# (name, function name, args, kwargs, a word the message must contain)
CONV2D_ERRORS = [
    ("zero stride", (x, w), dict(stride=0), "stride"),
    ("negative stride", (x, w), dict(stride=(1, -1)), "stride"),
    ("negative padding", (x, w), dict(padding=-1), "padding"),
    ("zero dilation", (x, w), dict(dilation=0), "dilation"),
    ("zero groups", (x, w), dict(groups=0), "groups"),
    ("groups not dividing channels", (x, w), dict(groups=3), "groups"),
    ("weight channels mismatch", (x, torch.randn(6, 3, 3, 3)), {}, "channels"),
    ("weight of rank 3", (x, torch.randn(6, 4, 3)), {}, "weight"),
    ("input of rank 2", (x[0, 0], w), {}, "input"),
    ("input of rank 5", (x[None], w), {}, "input"),
    ("dtype mismatch", (x, w.double()), {}, "type"),
    ("bias dtype mismatch", (x, w, torch.randn(6, dtype=torch.float64)), {}, "bias"),
    ("bias of wrong length", (x, w, torch.randn(5)), {}, "bias"),
    ("kernel larger than padded input", (x, torch.randn(6, 4, 9, 9)), {}, "size"),
    ("same with stride", (x, w), dict(stride=2, padding="same"), "same"),
    ("same with a weight of rank 3", (torch.randn(1, 1, 4, 3), torch.randn(1, 2, 2)),
     dict(padding="same"), "weight"),
    ("unknown padding string", (x, w), dict(padding="full"), "padding"),
    ("stride of three values", (x, w), dict(stride=(1, 2, 3)), "stride"),
    ("integer tensors", (x.int(), w.int()), {}, "input"),
    # torch's TypeError (PyTorch's test_Conv2d_missing_argument: nn.Conv2d(3, 3, 3)(None));
    # ours raised AttributeError, and took a weight of None for an undefined tensor
    ("input None", (None, w), {}, "input"),
    ("input a list", ([1.0], w), {}, "input"),
    ("weight None", (x, None), {}, "weight"),
    ("bias not a tensor", (x, w, "b"), {}, "bias"),
]

CONV_TRANSPOSE2D_ERRORS = [
    ("output_padding equal to stride", (x, wt), dict(stride=2, output_padding=2), "output padding"),
    ("output_padding with stride 1", (x, wt), dict(output_padding=1), "output padding"),
    ("negative output_padding", (x, wt), dict(stride=2, output_padding=-1), "output padding"),
    ("zero stride", (x, wt), dict(stride=0), "stride"),
    ("negative padding", (x, wt), dict(padding=-2), "padding"),
    ("groups not dividing channels", (x, wt), dict(groups=3), "groups"),
    ("weight rows mismatch", (x, torch.randn(5, 3, 3, 3)), {}, "channels"),
    ("bias of wrong length", (x, wt, torch.randn(4)), {}, "bias"),
    ("dtype mismatch", (x.double(), wt), {}, "type"),
    ("input None", (None, wt), {}, "input"),
    ("weight None", (x, None), {}, "weight"),
    ("bias not a tensor", (x, wt, "b"), {}, "bias"),
]


def _torch_error(fn, args, kwargs):
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    return info.type


@pytest.mark.parametrize("name,args,kwargs,word", CONV2D_ERRORS, ids=[e[0] for e in CONV2D_ERRORS])
def test_conv2d_rejects_like_torch(name, args, kwargs, word):
    expected = _torch_error(F.conv2d, args, kwargs) if name != "integer tensors" else RuntimeError
    with pytest.raises(expected, match=f"(?i){word}"):
        convkernels.conv2d(*args, **kwargs)


@pytest.mark.parametrize("name,args,kwargs,word", CONV_TRANSPOSE2D_ERRORS,
                         ids=[e[0] for e in CONV_TRANSPOSE2D_ERRORS])
def test_conv_transpose2d_rejects_like_torch(name, args, kwargs, word):
    expected = _torch_error(F.conv_transpose2d, args, kwargs)
    with pytest.raises(expected, match=f"(?i){word}"):
        convkernels.conv_transpose2d(*args, **kwargs)


def test_message_names_the_values():
    with pytest.raises(RuntimeError, match="groups=3 must divide the 4 channels"):
        convkernels.conv2d(x, torch.randn(6, 1, 3, 3), groups=3)


CHANNEL_MISMATCHES = [  # (function name, input size, weight size, groups)
    ("conv2d", (2, 1, 40, 0), (33, 0, 3, 3), 1),  # PyTorch's test_conv_empty_channel
    ("conv2d", (2, 3, 8, 8), (4, 2, 3, 3), 1),
    ("conv2d", (2, 4, 8, 8), (4, 1, 3, 3), 2),
    ("conv_transpose2d", (2, 3, 8, 8), (4, 2, 3, 3), 1),
]


@pytest.mark.parametrize("name,input_size,weight_size,groups", CHANNEL_MISMATCHES)
def test_channel_mismatch_in_torchs_words(name, input_size, weight_size, groups):
    """torch's sentence, word for word ("Given groups=1, weight of size [...], expected
    input[...] to have 0 channels, but got 1 channels instead"), which PyTorch's own tests and
    users' code match on."""
    args = (torch.randn(input_size), torch.randn(weight_size))
    with pytest.raises(RuntimeError) as theirs:
        getattr(F, name)(*args, groups=groups)
    with pytest.raises(RuntimeError) as ours:
        getattr(convkernels, name)(*args, groups=groups)
    assert str(ours.value).splitlines()[0] == str(theirs.value).splitlines()[0]


TORCH_WORDED_ERRORS = [  # PyTorch's OpInfo error inputs of conv2d (test_ops.py's test_errors)
    ("non-positive dilation", (1, 1, 4, 2), (1, 1, 2, 5), dict(dilation=(-1,))),
    ("3-D weight", (1, 1, 4, 3), (1, 2, 2), dict(padding="same")),
    ("fewer filters than groups", (2, 2, 4, 3), (2, 2, 1, 3), dict(groups=3)),
    ("fewer filters than groups, 'same'", (2, 2, 4, 3), (2, 2, 1, 3), dict(groups=3, padding="same")),
]


@pytest.mark.parametrize("input_size,weight_size,kwargs", [c[1:] for c in TORCH_WORDED_ERRORS],
                         ids=[c[0] for c in TORCH_WORDED_ERRORS])
def test_argument_errors_in_torchs_words(input_size, weight_size, kwargs):
    """The sentences PyTorch's own error-input tests match on ("dilation should be greater than
    zero", "Expected 3-dimensional input for 3-dimensional weight", "expected weight to be at least
    3 at dimension 0"): ours begin as torch's do."""
    args = (torch.randn(input_size, dtype=torch.float64), torch.randn(weight_size, dtype=torch.float64))
    with pytest.raises(RuntimeError) as theirs:
        F.conv2d(*args, **kwargs)
    with pytest.raises(RuntimeError) as ours:
        convkernels.conv2d(*args, **kwargs)
    theirs, ours = str(theirs.value).splitlines()[0], str(ours.value).splitlines()[0]
    assert ours.split(", but got")[0] == theirs.split(", but got")[0]


def test_operands_of_different_dtypes_are_reported_before_an_unsupported_dtype():
    """An int64 input and weight with a float64 bias: "should be the same", as torch says (its
    OpInfo error inputs expect it), not that int64 is unsupported."""
    x_int, w_int = torch.ones(2, 2, 4, 4, dtype=torch.int64), torch.ones(3, 2, 3, 3, dtype=torch.int64)
    with pytest.raises(RuntimeError, match="should be the same"):
        convkernels.conv2d(x_int, w_int, torch.randn(3, dtype=torch.float64))


def test_ops_check_their_arguments_without_the_python_layer():
    """torch.ops.convkernels.* are public too: the C++ checks guard them."""
    with pytest.raises(RuntimeError, match="stride"):
        torch.ops.convkernels.conv2d(x, w, None, [0, 1], [0, 0], [1, 1], 1)
    with pytest.raises(RuntimeError, match="grad_output"):
        torch.ops.convkernels.conv2d_weight(x, torch.randn(2, 6, 7, 7), [6, 4, 3, 3], [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(RuntimeError, match="weight_size"):
        torch.ops.convkernels.conv2d_weight(x, torch.randn(2, 6, 6, 6), [6, 4, 3], [1, 1], [0, 0], [1, 1], 1)


def test_transposed_output_below_one_pixel_is_rejected():
    """Padding that consumes the whole transposed output: torch's shape check rejects an output
    below 1 x 1 ("Output size is too small"; only its oneDNN path, which it takes for batches of
    more than one image, returns an empty tensor instead), as it rejects them for conv2d."""
    with pytest.raises(RuntimeError, match="too small"):
        F.conv_transpose2d(x[:1], wt, padding=5)
    for padding in (5, 6):
        with pytest.raises(RuntimeError, match="too small"):
            convkernels.conv_transpose2d(x, wt, padding=padding)


KERNEL_TOO_LARGE = "Kernel size can't be greater than actual input size"


@pytest.mark.parametrize("device", ["cpu", "meta"])  # meta: the fake kernels torch.compile traces
def test_kernel_larger_than_the_padded_input_in_torchs_words(device):
    """torch's sentence, which its tests and users' code match on; the fake kernels say it too
    (they used to return an empty output here)."""
    small, wide = torch.randn(1, 1, 4, 3), torch.randn(1, 1, 5, 2)
    with pytest.raises(RuntimeError, match=KERNEL_TOO_LARGE):
        F.conv2d(small, wide)
    with pytest.raises(RuntimeError, match=r"padded input size per channel: \(4 x 3\)\. Kernel size: "
                                           r"\(5 x 2\)\. " + KERNEL_TOO_LARGE):
        convkernels.conv2d(small.to(device), wide.to(device))
    with pytest.raises(RuntimeError, match=r"Kernel size: \(9 x 2\)"):  # the dilated extent
        convkernels.conv2d(small.to(device), torch.randn(1, 1, 3, 2, device=device), dilation=(4, 1))
    with pytest.raises(RuntimeError, match="Output size is too small"):
        convkernels.conv_transpose2d(small.to(device), wide.to(device), padding=9)


def test_kernel_dilated_past_int64_is_reported_not_overflowed():
    with pytest.raises(RuntimeError, match=r"Kernel size: \(over 2\^63 x 2\)\. " + KERNEL_TOO_LARGE):
        convkernels.conv2d(torch.randn(1, 1, 4, 3), torch.randn(1, 1, 3, 2), dilation=(2**62, 1))


def test_batch_of_zero_images():
    y = convkernels.conv2d(torch.randn(0, 4, 8, 8, requires_grad=True), w)
    assert y.shape == (0, 6, 6, 6)
    empty = torch.randn(0, 4, 8, 8, requires_grad=True)
    w_ = w.clone().requires_grad_()
    convkernels.conv2d(empty, w_).sum().backward()
    assert torch.equal(w_.grad, torch.zeros_like(w))


META = torch.device("meta")


@pytest.mark.parametrize("fn,args", [
    (convkernels.conv2d, (x, w.to(META))),
    (convkernels.conv2d, (x, w, torch.randn(6, device=META))),
    (convkernels.conv2d, (x.to(META), w)),
    (convkernels.conv_transpose2d, (x, wt.to(META))),
    (convkernels.conv_transpose2d, (x, wt, torch.randn(3, device=META))),
], ids=["conv2d-meta_weight", "conv2d-meta_bias", "conv2d-meta_input", "conv_transpose2d-meta_weight",
        "conv_transpose2d-meta_bias"])
def test_a_meta_operand_beside_real_ones_is_a_device_mismatch(fn, args):
    """The call goes to the fake kernel (Meta outranks CPU); it must not answer with an
    uninitialised tensor (torch 2.14's own F.conv2d does, for a meta weight or bias)."""
    with pytest.raises(RuntimeError, match="must be on the same device"):
        fn(*args)


def test_conv2d_weight_with_a_meta_operand_is_a_device_mismatch():
    with pytest.raises(RuntimeError, match="must be on the same device"):
        torch.ops.convkernels.conv2d_weight(x, torch.randn(2, 6, 6, 6, device=META), [6, 4, 3, 3],
                                            [1, 1], [0, 0], [1, 1], 1)


def test_all_operands_on_meta_give_the_shape():
    y = convkernels.conv2d(x.to(META), w.to(META), torch.randn(6, device=META), padding=1)
    assert y.device == META and y.shape == (2, 6, 8, 8)
