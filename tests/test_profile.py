"""convkernels.profile: every convolution layer of a model with its type, parameters, FLOPs
(2*N*K*(C/g)*R*S*P*Q) and minimum bytes (input + parameters + output once), checked on small
models whose numbers are worked out by hand."""
import torch
from torch import nn
from torchvision import models

import convkernels
from convkernels import nn as cknn
from convkernels.profile import LayerProfile


def test_counts_of_a_hand_computed_model():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),  # (2, 3, 16, 16) -> (2, 8, 8, 8)
        nn.ReLU(),
        cknn.DepthwiseConv2d(8, 3, padding=2, dilation=2),  # -> (2, 8, 8, 8)
        cknn.PointwiseConv2d(8, 16, bias=False),  # -> (2, 16, 8, 8)
        nn.ConvTranspose2d(16, 4, 2, stride=2),  # -> (2, 4, 16, 16)
    )
    profile = convkernels.profile(model, (2, 3, 16, 16))
    float32 = 4
    assert profile.rows == [
        # parameters: weight + bias; FLOPs: 2 * N * K * C/g * R * S * P * Q
        LayerProfile("0", "dense, strided", 8 * 3 * 9 + 8, 2 * 2 * 8 * 3 * 9 * 8 * 8,
                     (2 * 3 * 16 * 16 + 224 + 2 * 8 * 8 * 8) * float32),
        LayerProfile("2", "depthwise, dilated", 8 * 9 + 8, 2 * 2 * 8 * 1 * 9 * 8 * 8,
                     (1024 + 80 + 1024) * float32),
        LayerProfile("3", "pointwise", 16 * 8, 2 * 2 * 16 * 8 * 8 * 8,
                     (1024 + 128 + 2 * 16 * 8 * 8) * float32),
        # transposed: the FLOPs of the convolution it is the gradient of, (2,4,16,16)->(2,16,8,8)
        LayerProfile("4", "transposed, strided", 16 * 4 * 4 + 4, 2 * 2 * 16 * 4 * 4 * 8 * 8,
                     (2048 + 260 + 2 * 4 * 16 * 16) * float32),
    ]
    total = profile.total
    assert total.parameters == sum(p.numel() for p in model.parameters())
    assert total.flops == 55296 + 18432 + 32768 + 65536
    assert total.bytes == 4 * (2784 + 2128 + 3200 + 4356)


def test_a_separable_3x3_has_6_weights_per_filter_pair_instead_of_9():
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, bias=False),
                          cknn.SpatiallySeparableConv2d(1, 1, 3, padding=1, bias=False))
    dense, separable = convkernels.profile(model, (1, 1, 10, 10)).rows
    assert (dense.type, separable.type) == ("dense", "spatially separable")
    assert (dense.parameters, separable.parameters) == (9, 6)
    assert (dense.flops, separable.flops) == (2 * 9 * 100, 2 * (3 + 3) * 100)


def test_composite_layers_are_one_row_each_summing_their_parts():
    model = nn.Sequential(
        cknn.FlattenedConv2d(4, 8, 3, padding=1),  # 1x1 4->8, 3x1 and 1x3 per channel
        cknn.DepthwiseSeparableConv2d(8, 8, 3, padding=1, multiplier=2),
        cknn.ShuffledGroupConv2d(8, 8, 1, groups=4),
    )
    rows = convkernels.profile(model.double(), (1, 4, 10, 10)).rows
    assert [(r.name, r.type) for r in rows] == [
        ("0", "flattened"), ("1", "depthwise separable"), ("2", "shuffled grouped")]
    pixels = 10 * 10
    assert [r.parameters for r in rows] == [4 * 8 + 8 * 3 + 8 * 3 + 8, 16 * 9 + 16 * 8 + 8,
                                            8 * 2 + 8]
    assert [r.flops for r in rows] == [2 * (8 * 4 + 8 * 3 + 8 * 3) * pixels,
                                       2 * (16 * 9 + 8 * 16) * pixels, 2 * 8 * 2 * pixels]
    float64 = 8
    assert [r.bytes for r in rows] == [(400 + 88 + 800) * float64, (800 + 280 + 800) * float64,
                                       (800 + 24 + 800) * float64]


def test_profile_leaves_the_model_as_it_was():
    """Eval mode and no_grad for the pass; training flags and batch-norm statistics unchanged,
    no gradients; layers that are never called are not listed."""
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.norm, self.dropout = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout()
            self.unused = nn.Conv2d(4, 4, 1)

        def forward(self, input):
            return self.dropout(self.norm(self.conv(input)))

    model = Model()
    model.dropout.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    profile = convkernels.profile(model, (2, 3, 8, 8))
    assert [r.name for r in profile.rows] == ["conv"]
    assert [m.training for m in model.modules()] == [True, True, True, False, True]
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert all(p.grad is None for p in model.parameters())


def test_profile_of_a_torchvision_model_and_its_table():
    model = models.mobilenet_v3_small(weights=None)
    profile = convkernels.profile(model, (1, 3, 32, 32))
    convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(profile.rows) == len(convolutions)
    assert profile.total.parameters == sum(p.numel() for m in convolutions for p in m.parameters())
    assert {"dense, strided", "depthwise, strided", "depthwise", "pointwise"} <= {
        r.type for r in profile.rows}
    table = str(profile).splitlines()
    assert table[0].split() == ["layer", "type", "parameters", "FLOPs", "bytes", "FLOP/byte"]
    assert len(table) == len(profile.rows) + 2
    assert table[1].split()[:2] == ["features.0.0", "dense,"]
    assert table[-1].split()[:3] == ["total", f"{profile.total.parameters:,}",
                                     f"{profile.total.flops:,}"]
