"""convkernels.convert moves a whole model onto our kernels in place: real torchvision
architectures give torch's outputs and parameter gradients, and the model keeps its modules,
parameters, hooks and optimiser."""
import copy

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision import models
from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

import convkernels
from convkernels import nn as cknn

# Randomly initialised (no weight downloads), small inputs: the whole file runs in seconds.
ARCHITECTURES = {
    "resnet18": (lambda: models.resnet18(weights=None), (1, 3, 64, 64)),
    "mobilenet_v3_small": (lambda: models.mobilenet_v3_small(weights=None), (1, 3, 64, 64)),
    "shufflenet_v2_x0_5": (lambda: models.shufflenet_v2_x0_5(weights=None), (1, 3, 64, 64)),
    "convnext_tiny": (lambda: models.convnext_tiny(weights=None), (1, 3, 32, 32)),
    "deeplabv3_mobilenet_v3_large": (  # dilated backbone and atrous (ASPP) head
        lambda: deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None),
        (1, 3, 64, 64)),
}


class OpLog(TorchDispatchMode):
    """Records the name of every op that reaches the dispatcher."""

    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func.name())
        return func(*args, **(kwargs or {}))


def output_and_grads(model, input, grad_output=None):
    out = model(input)
    out = out["out"] if isinstance(out, dict) else out  # segmentation models return a dict
    if grad_output is None:
        grad_output = torch.randn_like(out)
    names, parameters = zip(*model.named_parameters())
    return out, dict(zip(names, torch.autograd.grad(out, parameters, grad_output))), grad_output


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_converted_model_matches_torch(name):
    """Every convolution becomes ours, and output and every parameter gradient equal torch's
    (float64, eval mode so that dropout and stochastic depth are off)."""
    build, input_shape = ARCHITECTURES[name]
    reference = build().double().eval()
    model = convkernels.convert(copy.deepcopy(reference))
    convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convolutions and all(type(m) is cknn.Conv2d for m in convolutions)

    input = torch.randn(input_shape, dtype=torch.float64)
    with OpLog() as log:
        out, grads, grad_output = output_and_grads(model, input)
    assert "aten::convolution" not in log.ops and "convkernels::conv2d" in log.ops
    expected_out, expected_grads, _ = output_and_grads(reference, input, grad_output)
    torch.testing.assert_close(out, expected_out)
    assert grads.keys() == expected_grads.keys()
    for key in grads:
        torch.testing.assert_close(grads[key], expected_grads[key], msg=key)


def test_converted_transposed_convolutions_match_torch():
    reference = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1, groups=2), nn.ReLU(),
        nn.ConvTranspose2d(4, 3, 1)).double()
    model = convkernels.convert(copy.deepcopy(reference))
    assert [type(m) for m in model[::2]] == [cknn.Conv2d, cknn.ConvTranspose2d,
                                             cknn.ConvTranspose2d]
    input = torch.randn(2, 3, 10, 12, dtype=torch.float64)
    out, grads, grad_output = output_and_grads(model, input)
    expected_out, expected_grads, _ = output_and_grads(reference, input, grad_output)
    assert out.shape == (2, 3, 10, 12)
    torch.testing.assert_close(out, expected_out)
    torch.testing.assert_close(grads, expected_grads)


def test_convert_keeps_modules_parameters_hooks_and_optimiser():
    """Conversion changes the class of each layer and nothing else: a layer shared by two parents,
    references held outside the model, Parameter objects, hooks and an optimiser built before the
    conversion all keep working."""
    shared = nn.Conv2d(4, 4, 3, padding=1)
    model = nn.Sequential(nn.Sequential(shared, nn.ReLU()), shared, nn.ConvTranspose2d(4, 2, 2))
    parameters = list(model.parameters())
    state_keys = model.state_dict().keys()
    calls = []
    shared.register_forward_pre_hook(lambda module, args: calls.append("pre"))
    shared.register_forward_hook(lambda module, args, output: calls.append(type(module)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    assert convkernels.convert(model) is model
    assert model[0][0] is shared and model[1] is shared and type(shared) is cknn.Conv2d
    assert all(p is q for p, q in zip(model.parameters(), parameters, strict=True))
    assert model.state_dict().keys() == state_keys

    model(torch.randn(2, 4, 6, 6)).square().sum().backward()
    assert calls == ["pre", cknn.Conv2d] * 2
    before = shared.weight.detach().clone()
    optimizer.step()
    torch.testing.assert_close(shared.weight, before - 0.1 * shared.weight.grad)


def test_convert_converts_a_bare_layer_and_leaves_subclasses_and_our_layers_alone():
    class Standardised(nn.Conv2d):  # a subclass may override forward: not ours to replace
        def forward(self, input):
            weight = (self.weight - self.weight.mean()) / self.weight.std()
            return self._conv_forward(input, weight, self.bias)

    layer = nn.Conv2d(3, 3, 1)
    assert convkernels.convert(layer) is layer and type(layer) is cknn.Conv2d
    model = nn.Sequential(Standardised(3, 3, 1), cknn.DepthwiseConv2d(3, 3), layer)
    convkernels.convert(model)
    assert [type(m) for m in model] == [Standardised, cknn.DepthwiseConv2d, cknn.Conv2d]
