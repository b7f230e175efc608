"""Layers for every convolution of the family, on convkernels' kernels.

``Conv2d`` and ``ConvTranspose2d`` are drop-in replacements for torch's (grouped, dilated,
strided and transposed convolutions are their arguments); the others are named members of the
family: depthwise, pointwise, spatially separable, depthwise separable, shuffled grouped and
flattened convolutions.
"""
from .conv import Conv2d, ConvTranspose2d, DepthwiseConv2d, PointwiseConv2d
from .separable import DepthwiseSeparableConv2d, FlattenedConv2d, SpatiallySeparableConv2d
from .shuffle import ChannelShuffle, ShuffledGroupConv2d

__all__ = [
    "ChannelShuffle",
    "Conv2d",
    "ConvTranspose2d",
    "DepthwiseConv2d",
    "DepthwiseSeparableConv2d",
    "FlattenedConv2d",
    "PointwiseConv2d",
    "ShuffledGroupConv2d",
    "SpatiallySeparableConv2d",
]
