"""Benchmark workloads: convolution shapes with where they come from.

Each case is one convolution in the forward frame (x: N x C x H x W, w: K x C/groups x R x S) or a
transposed one. Shapes are written out from the published architectures named in `source`.
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Workload:
    name: str
    source: str
    transposed: bool
    input_shape: tuple   # without the batch dimension
    weight_shape: tuple
    kwargs: dict = field(default_factory=dict, hash=False)

    def family(self):
        groups = self.kwargs.get("groups", 1)
        channels = self.weight_shape[0] if self.transposed else self.input_shape[0]
        if self.transposed:
            return "transposed"
        if groups == channels and groups > 1:
            return "depthwise"
        if self.weight_shape[2:] == (1, 1):
            return "pointwise"
        return "grouped" if groups > 1 else "dense"

    def flops(self, batch, output_hw):
        """2 * N * K * (C/g) * R * S * P * Q, in the forward frame."""
        k, cg, r, s = self.weight_shape
        if self.transposed:  # weight is C_in x C_out/g: the forward frame's K is C_in
            p, q = self.input_shape[1:]
        else:
            p, q = output_hw
        return 2 * batch * k * cg * r * s * p * q


def _conv(name, source, c, hw, k, kernel, groups=1, **kwargs):
    return Workload(name, source, False, (c, hw, hw), (k, c // groups, kernel, kernel),
                    dict(groups=groups, **kwargs))


def _convT(name, source, c_in, hw, c_out, kernel, groups=1, **kwargs):
    return Workload(name, source, True, (c_in, hw, hw), (c_in, c_out // groups, kernel, kernel),
                    dict(groups=groups, **kwargs))


SUITES = {
    # One case per convolution type of our family.
    "seed": [
        _conv("direct 3x3", "ResNet-50 conv2_x 3x3 (He et al. 2016)", 64, 56, 64, 3, padding=1),
        _conv("pointwise 1x1", "ResNet-50 conv2_x 1x1 expand", 64, 56, 256, 1),
        _conv("depthwise 3x3", "MobileNetV2 block 3 depthwise (Sandler et al. 2018)", 144, 56, 144, 3,
              groups=144, padding=1),
        _conv("depthwise x2 multiplier", "depthwise with channel multiplier 2", 32, 56, 64, 3,
              groups=32, padding=1),
        _conv("grouped 3x3", "ResNeXt-50 32x4d conv2_x (Xie et al. 2017)", 128, 56, 128, 3,
              groups=32, padding=1),
        _conv("dilated 3x3", "DeepLabV3 ASPP rate 12 at output stride 16 (Chen et al. 2017)", 256, 28,
              256, 3, padding=12, dilation=12),
        _conv("strided 3x3", "ResNet-50 conv3_1 3x3 stride 2", 128, 56, 128, 3, stride=2, padding=1),
        _convT("transposed 2x2", "UNet decoder up-convolution (Ronneberger et al. 2015)", 128, 28, 64, 2,
               stride=2),
        _conv("large depthwise 31x31", "RepLKNet-31B stage 1 (Ding et al. 2022)", 128, 28, 128, 31,
              groups=128, padding=15),
    ],
    # Tiny versions of the seed cases: the smoke test that the harness runs end to end.
    "quick": [
        _conv("direct 3x3", "ResNet-50 conv2_x 3x3, 16x16 crop", 32, 16, 32, 3, padding=1),
        _conv("depthwise 3x3", "MobileNetV2 depthwise, 16x16 crop", 32, 16, 32, 3, groups=32, padding=1),
        _conv("pointwise 1x1", "ResNet-50 1x1 expand, 16x16 crop", 32, 16, 64, 1),
        _conv("grouped 3x3", "ResNeXt 32x4d, 16x16 crop", 64, 16, 64, 3, groups=16, padding=1),
        _convT("transposed 2x2", "UNet up-convolution, 8x8 crop", 32, 8, 16, 2, stride=2),
    ],
}
