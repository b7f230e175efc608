"""The correctness grid: convolutions every backend must compute exactly as torch does.

The grid is fixed (a seeded sample of the full product, so test ids are stable); the data in each
test is fresh random. `full_grid` covers kernel sizes 1-7 square and not, stride 1-3, every padding
form, dilation 1-3, groups 1/2/4/depthwise/depthwise with multiplier, bias on and off, batch 0/1/3
and unbatched.
"""
import random

from conv_reference import ConvCase

KERNELS = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (1, 3), (3, 1), (2, 5), (7, 3)]
STRIDES = [1, 2, 3, (1, 2), (3, 1)]
PADDINGS = [0, 1, 2, 3, (0, 2), (1, 0), "same", "valid"]
DILATIONS = [1, 2, 3, (1, 2), (2, 1)]
# (groups, in_channels, out_channels): dense, grouped, depthwise, depthwise with multiplier 2 and 3.
CHANNELS = [(1, 3, 5), (2, 4, 6), (4, 8, 4), (4, 4, 4), (6, 6, 12), (3, 3, 9), (1, 1, 1)]
BATCHES = [1, 3, 0, None]  # None: unbatched (C, H, W) input


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


def _conv_case(rng, transposed):
    kernel = rng.choice(KERNELS)
    stride, dilation = _pair(rng.choice(STRIDES)), _pair(rng.choice(DILATIONS))
    padding = rng.choice(PADDINGS if not transposed else [p for p in PADDINGS if not isinstance(p, str)])
    if padding == "same" and stride != (1, 1):
        padding = 1
    groups, c, k = rng.choice(CHANNELS)
    batch = rng.choice(BATCHES)
    pad = (0, 0) if isinstance(padding, str) else _pair(padding)
    size = []
    for i in range(2):
        span = dilation[i] * (kernel[i] - 1) + 1
        # Between "just fits" and a few strides more; sometimes smaller than the kernel but
        # rescued by padding.
        size.append(max(1, span - 2 * pad[i] + rng.randint(0, 2 * stride[i] + 3)))
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if transposed:
        # x plays the forward output (K channels); weight is K x C/groups x R x S.
        op = tuple(rng.randint(0, max(stride[i], dilation[i]) - 1) for i in range(2))
        kwargs["output_padding"] = op
        size = [max(1, (s + 2 * pad[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1)
                for i, s in enumerate(size)]
        input_channels, weight_shape = k, (k, c // groups) + kernel
        # Keep the transposed output non-negative.
        for i in range(2):
            while (size[i] - 1) * stride[i] - 2 * pad[i] + dilation[i] * (kernel[i] - 1) + op[i] + 1 < 1:
                size[i] += 1
    else:
        input_channels, weight_shape = c, (k, c // groups) + kernel
    shape = (input_channels, *size) if batch is None else (batch, input_channels, *size)
    return ConvCase(transposed, shape, weight_shape, bias=rng.random() < 0.5, kwargs=kwargs)


def grid(count, transposed, seed):
    rng = random.Random(seed)
    return [_conv_case(rng, transposed) for _ in range(count)]


def full_grid(transposed):
    return grid(240, transposed, seed=2026)



# conv2d with the channel shuffle fused into its output write, on each kernel family: general
# grouped, 1x1 grouped (ShuffleNet's), depthwise with a channel multiplier, and batched/strided.
SHUFFLED = [
    ConvCase(False, (2, 8, 9, 11), (12, 2, 3, 3), kwargs=dict(padding=1, groups=4), shuffled=True),
    ConvCase(False, (2, 12, 7, 6), (24, 4, 1, 1), kwargs=dict(groups=3), shuffled=True),
    ConvCase(False, (1, 6, 10, 9), (12, 1, 3, 3), kwargs=dict(padding=1, groups=6), shuffled=True),
    ConvCase(False, (3, 4, 8, 8), (8, 2, 3, 3), bias=False, kwargs=dict(stride=2, groups=2), shuffled=True),
    ConvCase(False, (2, 4, 9, 9), (6, 4, 3, 3), kwargs=dict(padding=1, groups=1), shuffled=True),
]
