"""The channel shuffle of ShuffleNet as a layer, and the grouped convolution it follows."""
from torch import Tensor, nn

from ..functional import shuffled_conv2d
from ..shuffle import channel_shuffle
from .conv import Conv2d


class ChannelShuffle(nn.ChannelShuffle):
    """:class:`torch.nn.ChannelShuffle` computed by :func:`convkernels.channel_shuffle`: the
    channels (dimension 1) of ``groups`` groups are interleaved."""

    def forward(self, input: Tensor) -> Tensor:
        return channel_shuffle(input, self.groups)


class ShuffledGroupConv2d(Conv2d):
    """Grouped convolution followed by a channel shuffle (ShuffleNet, Zhang et al. 2017).

    ``channel_shuffle(conv2d(input, weight, bias, stride, padding, dilation, groups), groups)``:
    output channel ``i * groups + g`` is channel ``i`` of group ``g``'s result, so that the groups
    of a following grouped convolution each see the outputs of every group of this one.
    Parameters are those of the grouped ``Conv2d``:
    ``out_channels * in_channels / groups * kH * kW`` weights.

    The shuffle is fused into the convolution (:func:`convkernels.shuffled_conv2d`): the kernels
    store each output channel at its shuffled place, so no extra pass over the output happens.
    """

    _convolution = staticmethod(shuffled_conv2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, groups: int, stride=1,
                 padding=0, dilation=1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device, dtype)
