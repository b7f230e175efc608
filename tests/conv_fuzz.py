"""Random convolution geometry, where a fixed grid does not look: filters up to 11x11 and beyond
the input, dilation and stride up to 3, padding from 0 to past the filter's reach, output_padding,
groups with and without a channel multiplier, batches of 0 to 3 and unbatched input, and every
operand layout (NCHW, channels_last for either operand or both, strided views).

Each case is a function of its seed alone, so a failing id replays with the same geometry.
"""
import random
from dataclasses import dataclass

import torch

from conv_reference import ConvCase

LAYOUTS = ["nchw", "channels_last", "channels_last_input", "channels_last_weight", "strided"]


@dataclass
class FuzzCase:
    seed: int
    case: ConvCase
    layout: str

    def __str__(self):
        return f"seed{self.seed}-{self.layout}-{self.case}"

    def layout_arguments(self):
        """assert_matches_torch's keyword arguments for this layout."""
        return {
            "nchw": {},
            "channels_last": dict(memory_format=torch.channels_last),
            "channels_last_input": dict(memory_format=torch.channels_last,
                                        weight_memory_format=torch.contiguous_format),
            "channels_last_weight": dict(weight_memory_format=torch.channels_last),
            "strided": dict(noncontiguous=True),
        }[self.layout]


def _smallest_input(transposed, reach, stride, padding, output_padding):
    """The smallest input extent along one dimension whose output is not empty."""
    if transposed:
        # (size - 1) * stride - 2 * padding + reach + output_padding + 1 >= 1
        return max(1, -((reach + output_padding - 2 * padding) // stride) + 1)
    # size + 2 * padding - reach - 1 >= 0: a filter wider than the input is rescued by padding.
    return max(1, reach + 1 - 2 * padding)


def fuzz_case(seed, max_kernel=11, max_channels_per_group=3, max_extra_size=6, channel_multiple=1):
    """A random convolution; its channels and outputs per group are channel_multiple times a draw
    of 1 to max_channels_per_group."""
    rng = random.Random(seed)
    transposed = rng.random() < 0.4
    kernel = tuple(rng.randint(1, max_kernel) for _ in range(2))
    stride = tuple(rng.randint(1, 3) for _ in range(2))
    dilation = tuple(rng.randint(1, 3) for _ in range(2))
    reach = [dilation[i] * (kernel[i] - 1) for i in range(2)]
    padding = tuple(rng.randint(0, reach[i] + 2) for i in range(2))
    groups = rng.choice([1, 1, 2, 3, 4])
    channels_per_group = 1 if rng.random() < 0.3 else rng.randint(1, max_channels_per_group)
    outputs_per_group = rng.randint(1, max_channels_per_group)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    output_padding = (0, 0)
    if transposed:
        # Below the stride or below the dilation, as torch requires.
        output_padding = tuple(rng.randint(0, max(stride[i], dilation[i]) - 1) for i in range(2))
        kwargs["output_padding"] = output_padding
    elif rng.random() < 0.15:
        kwargs["padding"] = padding = "valid" if rng.random() < 0.5 or stride != (1, 1) else "same"
    explicit_padding = (0, 0) if isinstance(padding, str) else padding
    size = [_smallest_input(transposed, reach[i], stride[i], explicit_padding[i], output_padding[i])
            + rng.randint(0, max_extra_size) for i in range(2)]
    if padding == "same":
        size = [rng.randint(1, max_extra_size + 2) for _ in range(2)]

    channels_per_group, outputs_per_group = channel_multiple * channels_per_group, channel_multiple * outputs_per_group
    in_channels, out_channels = groups * channels_per_group, groups * outputs_per_group
    if transposed:  # x has the forward's output channels; weight is in x out/groups x R x S
        channels, weight_shape = out_channels, (out_channels, in_channels // groups, *kernel)
    else:
        channels, weight_shape = in_channels, (out_channels, channels_per_group, *kernel)
    batch = rng.choice([0, 1, 2, 3, None])
    input_shape = (channels, *size) if batch is None else (batch, channels, *size)
    case = ConvCase(transposed, input_shape, weight_shape, bias=rng.random() < 0.5, kwargs=kwargs)
    return FuzzCase(seed, case, rng.choice(LAYOUTS))
