"""convert: move an existing model's convolutions onto convkernels in one line."""
from torch import nn

from .nn import Conv2d, ConvTranspose2d

_OURS = {nn.Conv2d: Conv2d, nn.ConvTranspose2d: ConvTranspose2d}


def convert(model: nn.Module) -> nn.Module:
    """Makes every ``torch.nn.Conv2d`` and ``torch.nn.ConvTranspose2d`` of ``model`` (``model``
    itself included) compute with convkernels, in place, and returns ``model``.

    Each layer keeps its identity: only its class changes, to our subclass of torch's, which adds
    no state and replaces nothing but the convolution call. So the layer keeps its Parameter
    objects (optimisers holding them keep working), buffers and hooks, and every reference to it
    (its parent, other parents sharing it, user variables) now reaches our layer; results are
    torch's up to rounding. Subclasses of torch's layers are left alone, since they may override
    ``forward``.
    """
    for module in model.modules():
        ours = _OURS.get(type(module))
        if ours is not None:
            module.__class__ = ours
    return model
