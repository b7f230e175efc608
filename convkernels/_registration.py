"""Fake (meta) kernels, autograd formulas and the composite backward ops of a convkernels library.

The three kernel ops are fprop (``conv2d``), dgrad (``conv_transpose2d``) and wgrad
(``conv2d_weight``). Each gradient below is written in those three ops, so the gradient of a
gradient is again made of registered differentiable ops (double backward, gradient penalties) and
torch.compile sees nothing opaque. ``register_library`` runs once per library: ``convkernels`` (the
CPU and CUDA kernels) and ``convkernels_simt`` (the CUDA kernels run by the SIMT emulator).
"""
import math

import torch
from torch._prims_common import suggest_memory_format

from ._autograd import register_autograd
from ._batching import conv2d_rule, conv2d_weight_rule, convolution_rule
from ._shapes import conv_output_spatial, conv_transpose_output_spatial, transposed_output_padding
from .shuffle import channel_shuffle


def _result_format(input, weight):
    """torch returns a channels_last result when either operand is channels_last, except for an
    empty batch or no input channels (csrc/conv_ops.cpp)."""
    if input.shape[0] == 0 or input.shape[1] == 0:
        return torch.contiguous_format
    if torch.channels_last in (suggest_memory_format(input), suggest_memory_format(weight)):
        return torch.channels_last
    return torch.contiguous_format


def _in_torchs_formats(grad_input, grad_weight, input, weight):
    """The gradients (each None or a tensor) in torch's memory formats, whatever the incoming
    gradient's: that of the forward's result, except that an empty batch leaves grad_weight in
    the weight's."""
    input_format = _result_format(input, weight)
    weight_format = suggest_memory_format(weight) if input.shape[0] == 0 else input_format
    return [None if grad is None else grad.contiguous(memory_format=memory_format)
            for grad, memory_format in ((grad_input, input_format), (grad_weight, weight_format))]


def _check_same_device(**operands):
    """The fake kernels also serve real meta tensors, and Meta outranks every device in dispatch:
    a meta operand beside a CPU or CUDA one must be rejected as the kernels' own device check
    (csrc/conv_params.cpp) rejects mixed devices, not answered with an uninitialised tensor."""
    (first_name, first), *others = [(name, t) for name, t in operands.items() if t is not None]
    for name, tensor in others:
        if tensor.device != first.device:
            raise RuntimeError(f"{first_name} (on {first.device}) and {name} (on {tensor.device}) "
                               f"must be on the same device")


def _new_output(input, weight, size):
    return input.new_empty(size).contiguous(memory_format=_result_format(input, weight))


def _cropped(tensor, size):
    """The first size[0] rows and size[1] columns of tensor; tensor itself when that is all of it
    (the older vmap of is_grads_batched=True has no rule for the alias a full slice makes)."""
    if tensor.shape[2:] == size:
        return tensor
    return tensor[:, :, :size[0], :size[1]]


def _autocast_kernel(op, device_type):
    """torch's rule for convolutions under autocast: float32 tensors are cast to the autocast dtype
    (float64 ones are left alone), then the op runs with autocast off."""
    def kernel(*args):
        dtype = torch.get_autocast_dtype(device_type)
        args = [a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() and a.dtype != torch.float64
                else a for a in args]
        with torch.autocast(device_type, enabled=False):
            return op(*args)
    return kernel


def _conv_autograd(op, backward_op):
    """setup_context, backward and jvp of a convolution op (input, weight, bias, *hyperparameters)
    whose gradients are backward_op(grad, input, weight, *hyperparameters, output_mask)."""
    def setup_context(ctx, inputs, output):
        input, weight, bias, *hyperparameters = inputs
        ctx.save_for_backward(input, weight)
        ctx.save_for_forward(input, weight)
        ctx.hyperparameters = hyperparameters
        ctx.has_bias = bias is not None

    def backward(ctx, grad):
        input, weight = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1],
                ctx.has_bias and ctx.needs_input_grad[2]]
        grads = backward_op(grad, input, weight, *ctx.hyperparameters, mask)
        return *grads, *[None] * len(ctx.hyperparameters)

    def jvp(ctx, t_input, t_weight, t_bias, *_):
        # Bilinear in (input, weight), affine in bias: op(t_input, weight) + op(input, t_weight),
        # the bias tangent added by the first term (by a convolution of zeros if it moves alone).
        input, weight = ctx.saved_tensors
        pairs = [(x, w) for x, w in ((t_input, weight), (input, t_weight))
                 if x is not None and w is not None] or [(torch.zeros_like(input), weight)]
        terms = [op(x, w, t_bias if i == 0 else None, *ctx.hyperparameters)
                 for i, (x, w) in enumerate(pairs)]
        return sum(terms[1:], terms[0])

    return setup_context, backward, jvp


# torch.library.Library objects unregister their kernels when collected: keep them alive.
_IMPL_LIBRARIES = {}


def register_library(ns):
    ops = getattr(torch.ops, ns)

    # --- fake kernels: shapes, dtypes and memory formats, no data --------------------------------
    @torch.library.register_fake(f"{ns}::conv2d")
    def _(input, weight, bias, stride, padding, dilation, groups, shuffle_output=False):
        _check_same_device(input=input, weight=weight, bias=bias)
        # As torch: no input channels, no output channels.
        channels = weight.shape[0] if input.shape[1] != 0 else 0
        size = [input.shape[0], channels] + conv_output_spatial(input.shape, weight.shape, stride,
                                                                padding, dilation)
        return _new_output(input, weight, size)

    @torch.library.register_fake(f"{ns}::conv_transpose2d")
    def _(input, weight, bias, stride, padding, output_padding, groups, dilation):
        _check_same_device(input=input, weight=weight, bias=bias)
        size = [input.shape[0], weight.shape[1] * groups] + conv_transpose_output_spatial(
            input.shape, weight.shape, stride, padding, dilation, output_padding)
        return _new_output(input, weight, size)

    @torch.library.register_fake(f"{ns}::conv2d_weight")
    def _(input, grad_output, weight_size, stride, padding, dilation, groups):
        _check_same_device(input=input, grad_output=grad_output)
        # As the kernels' (csrc/conv_ops.cpp): channels_last for channels_last activations, as
        # torch's; contiguous for an empty batch or weight.
        activations = (suggest_memory_format(input), suggest_memory_format(grad_output))
        channels_last = (input.shape[0] != 0 and math.prod(weight_size) != 0
                         and torch.channels_last in activations)
        return input.new_empty(weight_size).contiguous(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    # --- composite backward ops ------------------------------------------------------------------
    lib = _IMPL_LIBRARIES[ns] = torch.library.Library(ns, "IMPL")

    def conv2d_backward(grad_output, input, weight, stride, padding, dilation, groups,
                        shuffle_output, output_mask):
        if input.shape[1] == 0:  # the output has no channels either: nothing flows back
            return (input.new_zeros(input.shape) if output_mask[0] else None,
                    weight.new_zeros(weight.shape) if output_mask[1] else None,
                    weight.new_zeros(weight.shape[0]) if output_mask[2] else None)
        if shuffle_output:  # undo the fused shuffle: shuffling K / groups groups inverts it
            grad_output = channel_shuffle(grad_output, grad_output.shape[1] // groups)
        grad_input = grad_weight = grad_bias = None
        if output_mask[0]:
            output_padding = transposed_output_padding(input.shape[2:], grad_output.shape[2:],
                                                       weight.shape[2:], stride, padding, dilation)
            grad_input = ops.conv_transpose2d(grad_output, weight, None, stride, padding,
                                              output_padding, groups, dilation)
        if output_mask[1]:
            grad_weight = ops.conv2d_weight(input, grad_output, weight.shape, stride, padding,
                                            dilation, groups)
        if output_mask[2]:
            grad_bias = grad_output.sum((0, 2, 3))
        return *_in_torchs_formats(grad_input, grad_weight, input, weight), grad_bias

    def conv_transpose2d_backward(grad_output, input, weight, stride, padding, output_padding,
                                  groups, dilation, output_mask):
        # conv_transpose2d(x, w) is dgrad(x, w): its input gradient is fprop, and its weight
        # gradient is wgrad with the roles of input and output swapped.
        grad_input = grad_weight = grad_bias = None
        if output_mask[0]:
            # With output_padding >= stride (allowed when below dilation) the convolution of
            # grad_output has rows past the input's: they belong to no input element.
            grad_input = _cropped(ops.conv2d(grad_output, weight, None, stride, padding, dilation,
                                             groups), input.shape[2:])
        if output_mask[1]:
            grad_weight = ops.conv2d_weight(grad_output, input, weight.shape, stride, padding,
                                            dilation, groups)
        if output_mask[2]:
            grad_bias = grad_output.sum((0, 2, 3))
        return *_in_torchs_formats(grad_input, grad_weight, input, weight), grad_bias

    for name, composite in (("conv2d_backward", conv2d_backward),
                            ("conv_transpose2d_backward", conv_transpose2d_backward)):
        lib.impl(name, composite, "CompositeImplicitAutograd")
        # vmap does not decompose composites of other libraries: the ops inside have rules
        # (torch.func.vmap's) or loop over the batch (the older vmap of is_grads_batched=True).
        lib.impl(name, composite, "FuncTorchBatched")
        lib.impl(name, composite, "Batched")

    # --- autograd --------------------------------------------------------------------------------
    def setup_conv2d_weight(ctx, inputs, output):
        input, grad_output, weight_size, stride, padding, dilation, groups = inputs
        ctx.save_for_backward(input, grad_output)
        ctx.save_for_forward(input, grad_output)
        ctx.weight_size = weight_size
        ctx.args = (stride, padding, dilation, groups)

    # conv2d_weight is bilinear in (input, grad_output): each gradient is one of the other ops, and
    # its tangent is conv2d_weight(t_input, grad_output) + conv2d_weight(input, t_grad_output).
    def backward_conv2d_weight(ctx, grad_grad_weight):
        input, grad_output = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.args
        grad_input = grad_grad_output = None
        if ctx.needs_input_grad[0]:
            output_padding = transposed_output_padding(input.shape[2:], grad_output.shape[2:],
                                                       grad_grad_weight.shape[2:], stride, padding,
                                                       dilation)
            grad_input = ops.conv_transpose2d(grad_output, grad_grad_weight, None, stride, padding,
                                              output_padding, groups, dilation)
        if ctx.needs_input_grad[1]:
            grad_grad_output = _cropped(ops.conv2d(input, grad_grad_weight, None, stride, padding,
                                                   dilation, groups), grad_output.shape[2:])
        return grad_input, grad_grad_output, None, None, None, None, None

    def jvp_conv2d_weight(ctx, t_input, t_grad_output, *_):
        input, grad_output = ctx.saved_tensors
        terms = [ops.conv2d_weight(a, b, ctx.weight_size, *ctx.args)
                 for a, b in ((t_input, grad_output), (input, t_grad_output))
                 if a is not None and b is not None]
        return sum(terms[1:], terms[0])

    # --- vmap ---------------------------------------------------------------------------------
    torch.library.register_vmap(f"{ns}::conv2d", conv2d_rule(ops.conv2d), lib=lib)
    torch.library.register_vmap(f"{ns}::conv_transpose2d",
                                convolution_rule(ops.conv_transpose2d, groups_index=3), lib=lib)
    torch.library.register_vmap(f"{ns}::conv2d_weight", conv2d_weight_rule(ops.conv2d_weight),
                                lib=lib)

    # --- autocast: like torch's convolutions, run in the autocast dtype -------------------------
    for name in ("conv2d", "conv_transpose2d", "conv2d_weight"):
        for device_type in ("cpu", "cuda"):
            lib.impl(name, _autocast_kernel(getattr(ops, name), device_type),
                     "Autocast" + device_type.upper())

    for name, backward_op in (("conv2d", ops.conv2d_backward),
                              ("conv_transpose2d", ops.conv_transpose2d_backward)):
        register_autograd(lib, name, *_conv_autograd(getattr(ops, name), backward_op))
    register_autograd(lib, "conv2d_weight", setup_conv2d_weight, backward_conv2d_weight,
                      jvp_conv2d_weight)
