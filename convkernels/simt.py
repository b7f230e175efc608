"""The CUDA kernels, run on the CPU by the SIMT emulator (csrc/simt).

The same kernel sources that nvcc compiles for the GPU, compiled by the host compiler against an
emulator that runs each CUDA thread of a block as a fiber. ``convkernels.simt.conv2d`` and
``conv_transpose2d`` take CPU tensors and behave exactly like ``convkernels.conv2d`` on a GPU of
sm_80 or later (autograd included, and float32 in TF32 where ``torch.backends.cudnn.allow_tf32``
allows it), so the correctness tests cover the CUDA kernels on machines without a GPU. Slow: meant
for tests on small shapes, not for work.

``schedule("reversed")`` or ``schedule("random:SEED")`` permutes the order in which a block's
threads run between barriers, so that a missing ``__syncthreads`` shows up as a wrong answer.
"""
import contextlib

import torch

try:
    from . import _simt  # noqa: F401  (registers torch.ops.convkernels_simt)
except ImportError as error:
    raise ImportError(
        "convkernels.simt is not built: it needs CUDA's headers (cuda_fp16.h with crt/) at build "
        "time; see CONVKERNELS_SIMT in setup.py") from error

from ._registration import register_library
from .functional import ConvFunctions

register_library("convkernels_simt")

_functions = ConvFunctions(torch.ops.convkernels_simt)
conv2d = _functions.conv2d
shuffled_conv2d = _functions.shuffled_conv2d
conv_transpose2d = _functions.conv_transpose2d


@contextlib.contextmanager
def schedule(order):
    """Runs the enclosed launches with the threads of each block in `order`: "forward",
    "reversed" or "random:SEED"."""
    previous = torch.ops.convkernels_simt.set_schedule(order)
    try:
        yield
    finally:
        torch.ops.convkernels_simt.set_schedule(previous)


__all__ = ["conv2d", "conv_transpose2d", "shuffled_conv2d", "schedule"]
