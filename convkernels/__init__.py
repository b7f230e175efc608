"""convkernels: hand-written CPU and CUDA convolution kernels for PyTorch.

``convkernels.conv2d`` and ``convkernels.conv_transpose2d`` take the arguments of their
``torch.nn.functional`` namesakes and return the same results, computed by our own kernels.
"""
import os as _os

import torch  # noqa: F401  (first: _C links against libtorch and libc10, which torch loads)

from . import _C  # noqa: F401  (loads the library: registers the ops and their kernels)
from ._registration import register_library

register_library("convkernels")

from .functional import conv2d, conv_transpose2d, set_float32_precision, shuffled_conv2d  # noqa: E402
from .shuffle import channel_shuffle  # noqa: E402
from . import nn  # noqa: E402
from .convert import convert  # noqa: E402
from .profile import profile  # noqa: E402
from . import tiles  # noqa: E402

if _os.environ.get("CONVKERNELS_TILE_TABLE"):  # a tuned tile table (convkernels.tiles), put in use at import
    tiles.load(_os.environ["CONVKERNELS_TILE_TABLE"])

__all__ = ["conv2d", "conv_transpose2d", "shuffled_conv2d", "channel_shuffle", "nn", "convert",
           "profile", "set_float32_precision", "tiles"]
