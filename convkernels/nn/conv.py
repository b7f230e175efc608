"""Layers of a single convolution: torch's Conv2d and ConvTranspose2d on our kernels, and the
depthwise and pointwise members of the family as named Conv2d configurations.

Each is a subclass of torch's layer that replaces only the call to the functional
convolution, so the constructor, parameter names and shapes, initialisation, ``padding_mode``,
``repr`` and ``state_dict`` are torch's own: a state_dict saved from either class loads into the
other.
"""
import torch.nn.functional as F
from torch import Tensor, nn

from ..functional import conv2d, conv_transpose2d


class Conv2d(nn.Conv2d):
    """:class:`torch.nn.Conv2d` computed by :func:`convkernels.conv2d`.

    Grouped, dilated and strided convolutions are its ``groups``, ``dilation`` and ``stride``
    arguments. A ``padding_mode`` other than ``'zeros'`` pads the input with :func:`F.pad` first,
    as torch does.
    """

    # The functional convolution the layer computes.
    _convolution = staticmethod(conv2d)

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        padding = self.padding
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        return self._convolution(input, weight, bias, self.stride, padding, self.dilation,
                                 self.groups)


class ConvTranspose2d(nn.ConvTranspose2d):
    """:class:`torch.nn.ConvTranspose2d` computed by :func:`convkernels.conv_transpose2d`.

    ``forward(input, output_size=None)`` resolves ``output_size`` into ``output_padding`` with
    torch's own rule. As torch's, the constructor accepts only ``padding_mode='zeros'``.
    """

    def forward(self, input: Tensor, output_size: list[int] | None = None) -> Tensor:
        output_padding = self._output_padding(input, output_size, self.stride, self.padding,
                                              self.kernel_size, 2, self.dilation)
        return conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                output_padding, self.groups, self.dilation)


class DepthwiseConv2d(Conv2d):
    """Depthwise convolution: every input channel is filtered on its own by ``multiplier`` filters.

    Output channel ``c * multiplier + m`` is input channel ``c`` convolved with that channel's
    ``m``-th filter ``weight[c * multiplier + m, 0]`` (plus its bias): no mixing across channels.
    It is ``Conv2d(channels, channels * multiplier, kernel_size, groups=channels)`` (and prints and
    saves as such), with ``channels * multiplier * kH * kW`` weights.
    """

    def __init__(self, channels: int, kernel_size, multiplier: int = 1, stride=1, padding=0,
                 dilation=1, bias: bool = True, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        super().__init__(channels, channels * multiplier, kernel_size, stride, padding, dilation,
                         groups=channels, bias=bias, padding_mode=padding_mode, device=device,
                         dtype=dtype)

    @property
    def multiplier(self) -> int:
        return self.out_channels // self.in_channels


class PointwiseConv2d(Conv2d):
    """Pointwise (1x1) convolution: the same linear map of the channels at every pixel.

    ``output[n, :, i, j] = weight[:, :, 0, 0] @ input[n, :, i, j] + bias``, i.e. an
    ``nn.Linear(in_channels, out_channels)`` applied along the channel dimension. It is
    ``Conv2d(in_channels, out_channels, 1)``, with ``in_channels * out_channels`` weights.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias, device=device, dtype=dtype)
