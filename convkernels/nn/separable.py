"""Factorised convolutions: a dense kernel replaced by a sequence of cheaper convolutions.

Each layer is an ``nn.Sequential`` of named convolution layers (so its ``repr`` shows the parts)
and computes exactly the dense convolution whose kernel ``dense_weight()`` returns, with the
stride, padding, dilation and ``padding_mode`` it was built with: the parts act on different axes
(rows, columns, channels), so they commute with padding and striding along the others.
"""
from collections import OrderedDict

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from .conv import Conv2d, DepthwiseConv2d, PointwiseConv2d


def _split_axes(kernel_size, stride, padding, dilation):
    """Arguments of the vertical (kH x 1) and horizontal (1 x kW) convolutions that together apply
    a kH x kW convolution's stride, padding and dilation: each takes its own axis' value."""
    (kh, kw), (sh, sw), (dh, dw) = _pair(kernel_size), _pair(stride), _pair(dilation)
    if isinstance(padding, str):  # 'same' / 'valid' mean the same along each axis
        vertical_padding = horizontal_padding = padding
    else:
        ph, pw = _pair(padding)
        vertical_padding, horizontal_padding = (ph, 0), (0, pw)
    vertical = dict(kernel_size=(kh, 1), stride=(sh, 1), padding=vertical_padding,
                    dilation=(dh, 1))
    horizontal = dict(kernel_size=(1, kw), stride=(1, sw), padding=horizontal_padding,
                      dilation=(1, dw))
    return vertical, horizontal


def _rank1_factors(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Best rank-1 factors of each filter of a (K, C, kH, kW) kernel seen as a (C*kH) x kW matrix
    (its rows, stacked over the channels): columns (K, C, kH, 1) and rows (K, 1, 1, kW) whose
    outer product is the filter's truncated SVD. The singular value is split evenly between them."""
    out_channels, in_channels, kh, kw = weight.shape
    u, s, vh = torch.linalg.svd(weight.reshape(out_channels, in_channels * kh, kw),
                                full_matrices=False)
    scale = s[:, :1].sqrt()
    columns = (u[:, :, 0] * scale).reshape(out_channels, in_channels, kh, 1)
    rows = (vh[:, 0, :] * scale).reshape(out_channels, 1, 1, kw)
    return columns, rows


class SpatiallySeparableConv2d(nn.Sequential):
    """Spatially separable convolution: a kH x 1 convolution, then a 1 x kW depthwise one.

    ``vertical`` (``Conv2d(in_channels, out_channels, (kH, 1), groups=groups)``) gives every output
    channel ``o`` a column filter per input channel; ``horizontal``
    (``DepthwiseConv2d(out_channels, (1, kW))``, with the bias) filters channel ``o`` along its
    rows with one row filter. Together they compute the dense convolution whose filter ``o`` is the
    outer product ``dense_weight()[o, c, r, s] = vertical.weight[o, c, r, 0] *
    horizontal.weight[o, 0, 0, s]``: a kernel that is separable in this sense (one row profile per
    filter, shared by its input channels, as in a Sobel filter) is reproduced exactly, and
    :meth:`from_conv2d` / :meth:`from_weight` find the best such approximation of any kernel.

    Weights: ``out_channels * in_channels / groups * kH + out_channels * kW`` instead of
    ``out_channels * in_channels / groups * kH * kW``; for a single-channel filter pair,
    ``kH + kW`` (6 for 3 x 3) instead of ``kH * kW`` (9). ``stride``, ``padding`` and ``dilation``
    act along rows in ``vertical`` and along columns in ``horizontal``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        vertical, horizontal = _split_axes(kernel_size, stride, padding, dilation)
        common = dict(padding_mode=padding_mode, device=device, dtype=dtype)
        super().__init__(OrderedDict(
            vertical=Conv2d(in_channels, out_channels, groups=groups, bias=False, **vertical,
                            **common),
            horizontal=DepthwiseConv2d(out_channels, bias=bias, **horizontal, **common),
        ))

    def dense_weight(self) -> Tensor:
        """The (out_channels, in_channels / groups, kH, kW) kernel this layer applies."""
        return self.vertical.weight * self.horizontal.weight

    @classmethod
    def from_weight(cls, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                    dilation=1, groups: int = 1, padding_mode: str = "zeros"):
        """The layer closest to ``conv2d(input, weight, bias, stride, padding, dilation, groups)``:
        each filter of ``weight`` is replaced by its best rank-1 approximation (truncated SVD of
        the filter as a (C * kH) x kW matrix, the least-squares optimum); exact when every filter
        is an outer product of a (C, kH) column and a kW row."""
        out_channels, in_per_group, kh, kw = weight.shape
        layer = cls(in_per_group * groups, out_channels, (kh, kw), stride, padding, dilation,
                    groups, bias is not None, padding_mode, device=weight.device,
                    dtype=weight.dtype)
        with torch.no_grad():
            columns, rows = _rank1_factors(weight)
            layer.vertical.weight.copy_(columns)
            layer.horizontal.weight.copy_(rows)
            if bias is not None:
                layer.horizontal.bias.copy_(bias)
        return layer

    @classmethod
    def from_conv2d(cls, conv: nn.Conv2d):
        """:meth:`from_weight` of a Conv2d's kernel, bias and arguments."""
        return cls.from_weight(conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation,
                               conv.groups, conv.padding_mode)


class DepthwiseSeparableConv2d(nn.Sequential):
    """Depthwise separable convolution (MobileNet): a depthwise, then a pointwise convolution.

    ``depthwise`` (``DepthwiseConv2d(in_channels, kernel_size, multiplier)``, no bias: a bias there
    would fold into the next one) filters each channel on its own; ``pointwise``
    (``PointwiseConv2d(in_channels * multiplier, out_channels)``, with the bias) mixes the
    channels. The dense equivalent has ``dense_weight()[o, c] = sum_m pointwise.weight[o, c *
    multiplier + m] * depthwise.weight[c * multiplier + m, 0]``.

    Weights: ``in_channels * multiplier * (kH * kW + out_channels)`` instead of
    ``in_channels * out_channels * kH * kW``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, multiplier: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        super().__init__(OrderedDict(
            depthwise=DepthwiseConv2d(in_channels, kernel_size, multiplier, stride, padding,
                                      dilation, bias=False, padding_mode=padding_mode,
                                      device=device, dtype=dtype),
            pointwise=PointwiseConv2d(in_channels * multiplier, out_channels, bias=bias,
                                      device=device, dtype=dtype),
        ))

    def dense_weight(self) -> Tensor:
        """The (out_channels, in_channels, kH, kW) kernel this layer applies."""
        depthwise = self.depthwise.weight.unflatten(0, (self.depthwise.in_channels, -1))
        pointwise = self.pointwise.weight.flatten(1).unflatten(1, depthwise.shape[:2])
        return torch.einsum("ocm,cmrs->ocrs", pointwise, depthwise[:, :, 0])


class FlattenedConv2d(nn.Sequential):
    """Flattened convolution (Jin, Dundar, Culurciello, "Flattened convolutional neural networks
    for feedforward acceleration", 2014): each 3-D filter replaced by three 1-D filters.

    ``lateral`` (``PointwiseConv2d(in_channels, out_channels)``) mixes the channels, ``vertical``
    (``DepthwiseConv2d(out_channels, (kH, 1))``) filters each channel along columns and
    ``horizontal`` (``DepthwiseConv2d(out_channels, (1, kW))``, with the bias) along rows. The dense
    equivalent is the rank-1 filter ``dense_weight()[o, c, r, s] = lateral[o, c] * vertical[o, r] *
    horizontal[o, s]``.

    Weights: ``C * K + K * kH + K * kW`` (C = in_channels, K = out_channels) instead of
    ``C * K * kH * kW``. The vertical part pads rows only (``(p, 0)``) and the horizontal part
    columns only (``(0, p)``), so the output has the size of the dense kH x kW convolution's.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, bias: bool = True, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        vertical, horizontal = _split_axes(kernel_size, stride, padding, dilation)
        common = dict(padding_mode=padding_mode, device=device, dtype=dtype)
        super().__init__(OrderedDict(
            lateral=PointwiseConv2d(in_channels, out_channels, bias=False, device=device,
                                    dtype=dtype),
            vertical=DepthwiseConv2d(out_channels, bias=False, **vertical, **common),
            horizontal=DepthwiseConv2d(out_channels, bias=bias, **horizontal, **common),
        ))

    def dense_weight(self) -> Tensor:
        """The (out_channels, in_channels, kH, kW) kernel this layer applies."""
        return self.lateral.weight * self.vertical.weight * self.horizontal.weight
