"""Benchmark workloads: one convolution shape each, with the layers it comes from.

A workload is a convolution in torch's terms: ``F.conv2d`` or ``F.conv_transpose2d`` of an input
of ``input_shape`` (without the batch dimension) by a weight of ``weight_shape``. ``sources`` names
every layer of the architecture with this exact shape ("model: module name"); the suites keep one
workload per shape, so ``len(sources)`` is how many layers it stands for.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    name: str
    transposed: bool
    input_shape: tuple      # C, H, W
    weight_shape: tuple     # conv2d: K, C/g, R, S; conv_transpose2d: C, K/g, R, S
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    output_padding: tuple = (0, 0)
    sources: tuple = ()

    @property
    def shape_key(self):
        """Everything but the name and sources: two layers with equal keys are the same work."""
        return (self.transposed, self.input_shape, self.weight_shape, self.stride, self.padding,
                self.dilation, self.groups, self.output_padding)

    @property
    def kernel(self):
        return self.weight_shape[2:]

    def family(self):
        """transposed, depthwise (groups == C_in, any channel multiplier), grouped, pointwise or dense."""
        if self.transposed:
            return "transposed"
        if self.groups > 1:
            return "depthwise" if self.groups == self.input_shape[0] else "grouped"
        return "pointwise" if self.kernel == (1, 1) else "dense"

    def output_shape(self):
        c, *hw = self.input_shape
        if self.transposed:
            k = self.weight_shape[1] * self.groups
            size = [(n - 1) * s - 2 * p + d * (r - 1) + op + 1 for n, s, p, d, r, op in
                    zip(hw, self.stride, self.padding, self.dilation, self.kernel, self.output_padding)]
        else:
            k = self.weight_shape[0]
            size = [(n + 2 * p - d * (r - 1) - 1) // s + 1 for n, s, p, d, r in
                    zip(hw, self.stride, self.padding, self.dilation, self.kernel)]
        return (k, *size)

    def flops(self, batch):
        """2 * N * K * (C/g) * R * S * P * Q, where P x Q is the output of the convolution in the
        forward frame (a transposed convolution's input). The same for all three directions."""
        frame = self.input_shape if self.transposed else self.output_shape()
        return 2 * batch * _numel(self.weight_shape) * frame[1] * frame[2]

    def min_bytes(self, batch, element_size):
        """Least memory traffic of any direction: input, weight and output, each once (every
        direction reads two of them and writes the third)."""
        elements = batch * (_numel(self.input_shape) + _numel(self.output_shape())) + _numel(self.weight_shape)
        return elements * element_size

    def describe(self):
        """The shape in one line: 'x 64x56x56 w 64x64x3x3 s2 p1 d1 g1'."""
        def dims(t):
            return "x".join(map(str, t))
        args = f"s{dims(self.stride)} p{dims(self.padding)} d{dims(self.dilation)} g{self.groups}"
        if self.transposed:
            args += f" op{dims(self.output_padding)}"
        return f"x {dims(self.input_shape)} w {dims(self.weight_shape)} {args}"


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def conv(name, source, c, hw, k, kernel, groups=1, stride=1, padding=0, dilation=1):
    """A square conv2d workload written out by hand."""
    return Workload(name, False, (c, hw, hw), (k, c // groups, kernel, kernel), (stride, stride),
                    (padding, padding), (dilation, dilation), groups, sources=(source,))


def conv_transpose(name, source, c_in, hw, c_out, kernel, stride=1, padding=0):
    """A square conv_transpose2d workload written out by hand (groups 1)."""
    return Workload(name, True, (c_in, hw, hw), (c_in, c_out, kernel, kernel), (stride, stride),
                    (padding, padding), sources=(source,))


# One case per convolution type of our family, each a layer of a published architecture.
SEED = [
    conv("direct 3x3", "ResNet-50 (He et al. 2016): conv2_x 3x3", 64, 56, 64, 3, padding=1),
    conv("pointwise 1x1", "ResNet-50: conv2_x 1x1 expand", 64, 56, 256, 1),
    conv("depthwise 3x3", "MobileNetV2 (Sandler et al. 2018): block 3 depthwise", 144, 56, 144, 3,
         groups=144, padding=1),
    conv("depthwise x2 multiplier", "MobileNetV1-style depthwise with channel multiplier 2", 32, 56, 64, 3,
         groups=32, padding=1),
    conv("grouped 3x3", "ResNeXt-50 32x4d (Xie et al. 2017): conv2_x", 128, 56, 128, 3, groups=32, padding=1),
    conv("dilated 3x3", "DeepLabV3 (Chen et al. 2017): ASPP rate 12, 448x448 input at output stride 16",
         256, 28, 256, 3, padding=12, dilation=12),
    conv("strided 3x3", "ResNet-50: conv3_1 3x3 stride 2", 128, 56, 128, 3, stride=2, padding=1),
    conv_transpose("transposed 2x2", "UNet (Ronneberger et al. 2015): last up-convolution, 572x572 input",
                   128, 196, 64, 2, stride=2),
    conv("large depthwise 31x31", "RepLKNet-31B (Ding et al. 2022): stage 1, 224x224 input", 128, 56, 128, 31,
         groups=128, padding=15),
]
