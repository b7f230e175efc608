"""The functional API: the signatures and results of torch.nn.functional.conv2d / conv_transpose2d.

Argument normalisation (ints to pairs, 'same' / 'valid', unbatched input) happens here; argument
checking happens once, in C++ (csrc/conv_params.cpp), for every backend.
"""
import warnings

import torch
import torch.nn.functional as F


def _pair(value, name):
    if not isinstance(value, (list, tuple)):
        return [value, value]
    values = list(value)
    if len(values) == 1:
        return values * 2
    if len(values) != 2:
        raise RuntimeError(
            f"expected {name} to be a single integer value or a list of 2 values to match the "
            f"convolution dimensions, but got {name}={value}")
    return values


def _check_tensors(op_name, input, weight, bias):
    """torch's TypeError for an operand that is not a tensor (torch.ops would take None as an
    undefined tensor, and the input's .dim() would raise AttributeError)."""
    for position, name, value in ((1, "input", input), (2, "weight", weight), (3, "bias", bias)):
        if not isinstance(value, torch.Tensor) and not (name == "bias" and value is None):
            raise TypeError(f"{op_name}(): argument '{name}' (position {position}) must be Tensor, "
                            f"not {type(value).__name__}")


def _batched(input, op_name):
    """Returns (4-D input, whether it was unbatched)."""
    if input.dim() == 4:
        return input, False
    if input.dim() == 3:
        return input.unsqueeze(0), True
    raise RuntimeError(f"Expected 3D (unbatched) or 4D (batched) input to {op_name}, but got "
                       f"input of size: {list(input.shape)}")


def _same_padding(input, weight, stride, dilation):
    """torch's padding='same': total padding dilation*(k-1) per dimension, the odd extra row or
    column at the bottom/right. Returns (input padded by the extra, symmetric padding)."""
    if stride != [1, 1]:
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    if weight.dim() != 4:  # no filter extent to read: the op's argument check rejects the weight
        return input, [0, 0]
    padding, extra = [], []
    for i in range(2):
        total = dilation[i] * (weight.shape[2 + i] - 1)
        padding.append(total // 2)
        extra.append(total - 2 * (total // 2))
    if any(extra):
        warnings.warn("Using padding='same' with even kernel lengths and odd dilation may require a "
                      "zero-padded copy of the input be created")
        input = F.pad(input, [0, extra[1], 0, extra[0]])
    return input, padding


class ConvFunctions:
    """conv2d and conv_transpose2d over one library of ops (``torch.ops.convkernels`` runs the CPU
    and CUDA kernels; ``torch.ops.convkernels_simt`` the CUDA kernels under the SIMT emulator)."""

    def __init__(self, ops):
        self._ops = ops

    def __deepcopy__(self, memo):
        # Stateless, and torch.ops namespaces do not copy: a deep copy of anything that holds
        # convkernels.conv2d (a module, torch's OpInfo database) shares it, as it would F.conv2d.
        return self

    def conv2d(self, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        """Same arguments and result as ``torch.nn.functional.conv2d``."""
        return self._conv2d(input, weight, bias, stride, padding, dilation, groups, False)

    def shuffled_conv2d(self, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        """``channel_shuffle(conv2d(input, weight, ...), groups)`` (ShuffleNet), in one pass: the
        kernels store output channel ``o`` of group ``g`` at ``o * groups + g`` as they write it."""
        return self._conv2d(input, weight, bias, stride, padding, dilation, groups, True)

    def _conv2d(self, input, weight, bias, stride, padding, dilation, groups, shuffle_output):
        _check_tensors("conv2d", input, weight, bias)
        input, unbatched = _batched(input, "conv2d")
        stride = _pair(stride, "stride")
        dilation = _pair(dilation, "dilation")
        if isinstance(padding, str):
            if padding == "valid":
                padding = [0, 0]
            elif padding == "same":
                input, padding = _same_padding(input, weight, stride, dilation)
            else:
                raise RuntimeError(f"Invalid padding string: '{padding}'")
        else:
            padding = _pair(padding, "padding")
        output = self._ops.conv2d(input, weight, bias, stride, padding, dilation, groups,
                                  shuffle_output)
        return output.squeeze(0) if unbatched else output

    def conv_transpose2d(self, input, weight, bias=None, stride=1, padding=0, output_padding=0,
                         groups=1, dilation=1):
        """Same arguments and result as ``torch.nn.functional.conv_transpose2d``."""
        _check_tensors("conv_transpose2d", input, weight, bias)
        input, unbatched = _batched(input, "conv_transpose2d")
        output = self._ops.conv_transpose2d(
            input, weight, bias, _pair(stride, "stride"), _pair(padding, "padding"),
            _pair(output_padding, "output_padding"), groups, _pair(dilation, "dilation"))
        return output.squeeze(0) if unbatched else output

    def set_float32_precision(self, precision):
        """How float32 convolutions multiply on CUDA, beyond ``torch.backends.cudnn.allow_tf32``;
        returns the previous setting. ``"default"``: as torch, TF32 on tensor cores where
        allow_tf32 allows it, else IEEE float32. ``"3xtf32"`` (opt-in): the channels_last implicit
        GEMM (forward and input gradient) splits each operand into two TF32 numbers and adds three
        tensor-core products, for float32-level error at tensor-core speed, whatever allow_tf32
        says. The CPU kernels always compute in IEEE float32. Process-wide, like torch's flag."""
        return self._ops.set_float32_precision(precision)


_default = ConvFunctions(torch.ops.convkernels)
conv2d = _default.conv2d
shuffled_conv2d = _default.shuffled_conv2d
conv_transpose2d = _default.conv_transpose2d
set_float32_precision = _default.set_float32_precision
