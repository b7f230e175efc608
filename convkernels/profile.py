"""profile: parameters, FLOPs and minimum memory traffic of every convolution layer of a model."""
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .nn import (DepthwiseSeparableConv2d, FlattenedConv2d, ShuffledGroupConv2d,
                 SpatiallySeparableConv2d)

_COMPOSITES = {
    SpatiallySeparableConv2d: "spatially separable",
    DepthwiseSeparableConv2d: "depthwise separable",
    ShuffledGroupConv2d: "shuffled grouped",
    FlattenedConv2d: "flattened",
}
_CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d)


@dataclass(frozen=True)
class LayerProfile:
    """One convolution layer's cost for one forward pass.

    ``flops``: 2 * N * K * (C / groups) * R * S * P * Q summed over its convolutions (a transposed
    convolution counts as the convolution whose gradient it is). ``bytes``: the least memory
    traffic, reading the input and the parameters and writing the output once each.
    """
    name: str
    type: str
    parameters: int
    flops: int
    bytes: int

    @property
    def intensity(self) -> float:
        """FLOPs per byte: below a machine's FLOP rate / bandwidth, the layer is bandwidth-bound."""
        return self.flops / self.bytes if self.bytes else 0.0


@dataclass(frozen=True)
class Profile:
    """The convolution layers of a model in the order the forward pass first calls them."""
    rows: list[LayerProfile]

    @property
    def total(self) -> LayerProfile:
        return LayerProfile("total", "", sum(r.parameters for r in self.rows),
                            sum(r.flops for r in self.rows), sum(r.bytes for r in self.rows))

    def __str__(self) -> str:
        header = ("layer", "type", "parameters", "FLOPs", "bytes", "FLOP/byte")
        lines = [(r.name, r.type, f"{r.parameters:,}", f"{r.flops:,}", f"{r.bytes:,}",
                  f"{r.intensity:.1f}") for r in [*self.rows, self.total]]
        widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

        def format_line(line):
            return "  ".join([line[0].ljust(widths[0]), line[1].ljust(widths[1])]
                             + [cell.rjust(width) for cell, width in zip(line[2:], widths[2:])])

        return "\n".join(format_line(line).rstrip() for line in [header, *lines])


def convolution_type(module: nn.Module) -> str | None:
    """The family member a layer computes (``None`` for a layer that is not a convolution): a
    composite layer's own name, else the kernel's shape (transposed; depthwise, grouped, pointwise
    or dense) and its modifiers (strided, dilated), e.g. ``'depthwise, strided'``."""
    for cls, name in _COMPOSITES.items():
        if isinstance(module, cls):
            return name
    if not isinstance(module, _CONVOLUTIONS):
        return None
    transposed = isinstance(module, nn.ConvTranspose2d)
    tags = ["transposed"] if transposed else []
    if module.groups > 1:
        tags.append("depthwise" if module.groups == module.in_channels else "grouped")
    elif module.kernel_size == (1, 1):
        tags.append("pointwise")
    elif not transposed:
        tags.append("dense")
    if module.stride != (1, 1):
        tags.append("strided")
    if module.dilation != (1, 1):
        tags.append("dilated")
    return ", ".join(tags)


def _flops(conv: nn.Module, input: Tensor, output: Tensor) -> int:
    """2 * N * weight.numel() * P * Q, where P x Q is the output of the forward convolution: the
    output of a convolution, the input of a transposed one."""
    frame = input if isinstance(conv, nn.ConvTranspose2d) else output
    batch = frame.shape[0] if frame.dim() == 4 else 1
    return 2 * batch * conv.weight.numel() * frame.shape[-2] * frame.shape[-1]


def _nbytes(tensor: Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def profile(model: nn.Module, input_shape) -> Profile:
    """Lists every convolution layer of ``model`` (torch's Conv2d and ConvTranspose2d, ours, and
    our composite layers as one row each) with its parameters, FLOPs and minimum bytes, measured
    by forward hooks during one forward pass on a random input of ``input_shape`` (in the dtype
    and on the device of the model's parameters), under ``torch.no_grad`` and in eval mode. The
    model's training flags are restored afterwards; layers the pass does not call are not listed.
    """
    owner = {}  # each convolution module -> the listed layer it is part of
    types = {}  # listed layer -> (name, type)
    for name, module in model.named_modules():
        if module not in owner and (conv_type := convolution_type(module)) is not None:
            types[module] = (name, conv_type)
            owner.update((part, module) for part in module.modules())

    tallies = {}  # listed layer -> [flops, bytes], in the order of first call

    def count_bytes(layer, args, output):
        traffic = _nbytes(args[0]) + sum(_nbytes(p) for p in layer.parameters()) + _nbytes(output)
        tallies.setdefault(layer, [0, 0])[1] += traffic

    def count_flops(conv, args, output):
        tallies.setdefault(owner[conv], [0, 0])[0] += _flops(conv, args[0], output)

    handles = [layer.register_forward_hook(count_bytes) for layer in types]
    handles += [conv.register_forward_hook(count_flops) for conv in owner
                if isinstance(conv, _CONVOLUTIONS)]
    training = {module: module.training for module in model.modules()}
    parameter = next(model.parameters(), torch.empty(0))
    try:
        model.eval()
        with torch.no_grad():
            model(torch.randn(input_shape, dtype=parameter.dtype, device=parameter.device))
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in training.items():
            module.training = mode
    return Profile([
        LayerProfile(*types[layer], sum(p.numel() for p in layer.parameters()), flops, traffic)
        for layer, (flops, traffic) in tallies.items()])
