"""The benchmark suites: the convolution layers of real architectures, one workload per shape.

torchvision's models are built on the meta device (no weights, no memory) and run once at their
real input resolution with forward hooks on every convolution: the hooks record each layer's
shape, which costs a fraction of a second per model. The architectures torchvision lacks are
written out from their papers.
"""
import dataclasses
import functools

import torch
from torch import nn

from bench.workloads import SEED, Workload, conv, conv_transpose

# suite -> (torchvision builder, keyword arguments, input resolution)
_TORCHVISION = {
    "resnet50": ("resnet50", {}, 224),
    "resnext50": ("resnext50_32x4d", {}, 224),
    "mobilenet_v2": ("mobilenet_v2", {}, 224),
    "shufflenet_v2": ("shufflenet_v2_x1_0", {}, 224),
    "convnext_tiny": ("convnext_tiny", {}, 224),
    "deeplabv3": ("segmentation.deeplabv3_resnet50", {"weights_backbone": None}, 512),
}


def torchvision_suite(builder, kwargs, resolution):
    import torchvision

    constructor = functools.reduce(getattr, builder.split("."), torchvision.models)
    with torch.device("meta"):
        model = constructor(weights=None, **kwargs).eval()
    model_name = builder.split(".")[-1]
    layers = []

    def record(name):
        def hook(module, args, output):
            layers.append(_from_module(f"torchvision {model_name} {resolution}x{resolution}: {name}",
                                       module, args[0]))
        return hook

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            module.register_forward_hook(record(name))
    with torch.no_grad():
        model(torch.empty(1, 3, resolution, resolution, device="meta"))
    return deduplicate(layers)


def _from_module(source, module, input):
    transposed = isinstance(module, nn.ConvTranspose2d)
    w = Workload("", transposed, tuple(input.shape[1:]), tuple(module.weight.shape), module.stride,
                 module.padding, module.dilation, module.groups,
                 module.output_padding if transposed else (0, 0), (source,))
    return _named(w)


def _named(w):
    """Names a workload by its type and shape: 'depthwise 3x3 s2 96->96 @112x112'."""
    r, s = w.kernel
    tags = [w.family(), f"{r}x{s}"]
    tags += [f"s{w.stride[0]}"] if w.stride != (1, 1) else []
    tags += [f"d{w.dilation[0]}"] if w.dilation != (1, 1) else []
    tags += [f"g{w.groups}"] if w.family() == "grouped" else []
    c, h, width = w.input_shape
    tags.append(f"{c}->{w.output_shape()[0]} @{h}x{width}")
    return dataclasses.replace(w, name=" ".join(tags))


def deduplicate(layers):
    """One workload per distinct shape, in order of first appearance, with every layer's source."""
    by_shape = {}
    for w in layers:
        first = by_shape.setdefault(w.shape_key, w)
        if first is not w:
            by_shape[w.shape_key] = dataclasses.replace(first, sources=first.sources + w.sources)
    return list(by_shape.values())


def replknet31b():
    """RepLKNet-31B (Ding et al. 2022, Table 1) at 224x224: stages of 2, 2, 18 and 2 blocks with
    128, 256, 512 and 1024 channels at 56, 28, 14 and 7 pixels, and 31x31, 29x29, 27x27 and 13x13
    depthwise kernels ('same' padding). The large-kernel layers only."""
    stages = zip((2, 2, 18, 2), (128, 256, 512, 1024), (56, 28, 14, 7), (31, 29, 27, 13))
    return deduplicate([
        _named(conv("", f"RepLKNet-31B 224x224: stage {i} block {b} large kernel", c, hw, c, k,
                    groups=c, padding=k // 2))
        for i, (blocks, c, hw, k) in enumerate(stages, 1) for b in range(1, blocks + 1)])


def unet_decoder():
    """UNet (Ronneberger et al. 2015, Fig. 1) at 572x572: the four 2x2 stride-2 up-convolutions of
    the expansive path, each halving the channels (1024 -> 512 at 28x28 up to 128 -> 64 at 196x196)."""
    steps = zip((1024, 512, 256, 128), (28, 52, 100, 196))
    return [_named(conv_transpose("", f"UNet 572x572: up-convolution {i}", c, hw, c // 2, 2, stride=2))
            for i, (c, hw) in enumerate(steps, 1)]


_BUILDERS = {
    "seed": lambda: SEED,
    **{name: functools.partial(torchvision_suite, *spec) for name, spec in _TORCHVISION.items()},
    "replknet31b": replknet31b,
    "unet_decoder": unet_decoder,
}
NAMES = ["quick", *_BUILDERS]


@functools.cache
def suite(name):
    """The workloads of a suite. 'quick' holds the cheapest layer (fewest FLOPs) of each target
    category across the other suites: every kind of kernel, measured in seconds."""
    if name != "quick":
        return _BUILDERS[name]()
    from bench.targets import category

    cheapest = {}
    for builder in _BUILDERS:
        for w in suite(builder):
            if category(w) not in cheapest or w.flops(1) < cheapest[category(w)].flops(1):
                cheapest[category(w)] = w
    return list(cheapest.values())
