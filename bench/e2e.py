"""End to end: a training step (forward, loss, backward) of whole torchvision models, stock against
the same model moved onto our kernels by ``convkernels.convert``, timed as the kernels are."""
import copy

import torch
import torch.nn.functional as F

import convkernels
from bench.measure import time_alternating

MODELS = ("resnet18", "resnet50", "mobilenet_v2")


def training_step(model, images, labels):
    def step():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
    return step


def measure_model(name, input_shape, device, memory_format, timing):
    import torchvision

    stock = getattr(torchvision.models, name)(weights=None).to(device, memory_format=memory_format).train()
    ours = convkernels.convert(copy.deepcopy(stock))
    images = torch.randn(input_shape, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 1000, input_shape[:1], device=device)
    steps = {"ours": training_step(ours, images, labels), "torch": training_step(stock, images, labels)}
    times = time_alternating(steps, timing)
    return dict(model=name, input=" x ".join(map(str, input_shape)), ours_s=times["ours"][0],
                ours_spread_s=times["ours"][1], torch_s=times["torch"][0], torch_spread_s=times["torch"][1],
                ratio=times["ours"][0] / times["torch"][0],
                grad_rel_diff=gradient_difference(ours, stock))


def gradient_difference(ours, stock):
    """||g_ours - g_torch|| / ||g_torch|| over all parameters' gradients of the last step (same
    weights, same batch). A norm over the whole model, not a per-tensor maximum: some gradients
    vanish by structure (a bias before batch norm) and their relative differences mean nothing."""
    pairs = [(a.grad.double(), b.grad.double()) for a, b in zip(ours.parameters(), stock.parameters())]
    difference = sum((a - b).square().sum() for a, b in pairs)
    return (difference / sum(b.square().sum() for _, b in pairs)).sqrt().item()
