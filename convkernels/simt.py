"""The CUDA kernels, run on the CPU by the SIMT emulator (csrc/simt).

The same kernel sources that nvcc compiles for the GPU, compiled by the host compiler against an
emulator that runs each CUDA thread of a block as a fiber. ``convkernels.simt.conv2d`` and
``conv_transpose2d`` take CPU tensors and behave exactly like ``convkernels.conv2d`` on a GPU of
sm_80 or later (autograd included, and float32 in TF32 where ``torch.backends.cudnn.allow_tf32``
allows it), so the correctness tests cover the CUDA kernels on machines without a GPU. Slow: meant
for tests on small shapes, not for work.

``schedule("reversed")`` or ``schedule("random:SEED")`` permutes the order in which a block's
threads run between barriers, so that a missing ``__syncthreads`` shows up as a wrong answer.

``arch("sm_90a")`` makes the emulated GPU a Hopper one (H100, H200), whose kernel choice differs:
the channels_last tensor-core GEMMs then multiply with wgmma. The default is "sm_80" (also set by
the environment variable SIMT_ARCH).

``counters()`` counts what the emulated launches do, per kernel name, as Nsight Compute would on
a GPU: global requests and sectors, shared requests and wavefronts, bulk (TMA) copies and the
sectors they read, barriers, FMAs and MMAs.
"""
import contextlib
import dataclasses

import torch

try:
    from . import _simt  # noqa: F401  (registers torch.ops.convkernels_simt)
except ImportError as error:
    raise ImportError(
        "convkernels.simt is not built: it needs CUDA's headers (cuda_fp16.h with crt/) at build "
        "time; see CONVKERNELS_SIMT in setup.py") from error

from ._registration import register_library
from .functional import ConvFunctions
from .tiles import TileTables

register_library("convkernels_simt")

_functions = ConvFunctions(torch.ops.convkernels_simt)
conv2d = _functions.conv2d
shuffled_conv2d = _functions.shuffled_conv2d
conv_transpose2d = _functions.conv_transpose2d
set_float32_precision = _functions.set_float32_precision  # the emulator's own setting
tiles = TileTables(torch.ops.convkernels_simt)  # the emulator's own tile table


@contextlib.contextmanager
def schedule(order):
    """Runs the enclosed launches with the threads of each block in `order`: "forward",
    "reversed" or "random:SEED"."""
    previous = torch.ops.convkernels_simt.set_schedule(order)
    try:
        yield
    finally:
        torch.ops.convkernels_simt.set_schedule(previous)


@contextlib.contextmanager
def arch(name):
    """Runs the enclosed calls on an emulated GPU of `name`: "sm_80" or "sm_90a"."""
    previous = torch.ops.convkernels_simt.set_arch(name)
    try:
        yield
    finally:
        torch.ops.convkernels_simt.set_arch(previous)


@dataclasses.dataclass(frozen=True)
class KernelCounters:
    """What the launches of one kernel did, summed over them (csrc/simt/counters.h). A request is
    one warp-wide memory instruction; a sector 32 bytes of global memory; a wavefront one pass of
    the shared-memory banks (a request takes more than one when lanes conflict in a bank, or move
    more than 128 bytes); shared_bank_conflicts: the wavefronts beyond the fewest each request could
    take (0 for conflict-free code). barriers: __syncthreads per block; ffma, dfma: per thread; mma: per warp;
    wgmma_m64n8: per warpgroup, an m64nNk16 (k8 in TF32) counting N / 8 (4 mma of the same k each).
    bulk_copies: cp.async.bulk and cp.async.bulk.tensor (TMA), per issuing thread; bulk_copy_sectors:
    the distinct global sectors each copy reads (out-of-bounds fill reads none). They are in no
    request, so sectors_per_request leaves them out.
    """
    launches: int = 0
    global_load_requests: int = 0
    global_load_sectors: int = 0
    global_store_requests: int = 0
    global_store_sectors: int = 0
    shared_load_requests: int = 0
    shared_load_wavefronts: int = 0
    shared_store_requests: int = 0
    shared_store_wavefronts: int = 0
    shared_bank_conflicts: int = 0
    barriers: int = 0
    ffma: int = 0
    dfma: int = 0
    mma_16816: int = 0
    mma_1688: int = 0
    mma_1684: int = 0
    wgmma_m64n8: int = 0
    bulk_copies: int = 0
    bulk_copy_sectors: int = 0

    @property
    def sectors_per_request(self):
        """Global sectors per request, loads and stores together: 4 when 32 lanes move 4 bytes
        each from one 128-byte line, 32 when every lane is in a sector of its own."""
        requests = self.global_load_requests + self.global_store_requests
        return (self.global_load_sectors + self.global_store_sectors) / requests if requests else 0.0

    @property
    def wavefronts_per_request(self):
        """Shared wavefronts per request, loads and stores together: 1 without bank conflicts for
        4-byte accesses, 4 for 16-byte ones; up to 32 for a 32-way conflict."""
        requests = self.shared_load_requests + self.shared_store_requests
        return (self.shared_load_wavefronts + self.shared_store_wavefronts) / requests if requests else 0.0

    def __add__(self, other):
        return KernelCounters(*(getattr(self, f.name) + getattr(other, f.name)
                                for f in dataclasses.fields(self)))


if [f.name for f in dataclasses.fields(KernelCounters)] != list(torch.ops.convkernels_simt.counter_fields()):
    raise ImportError("convkernels.simt.KernelCounters does not match the fields of the built _simt library")


@contextlib.contextmanager
def counters():
    """Counts the emulated launches of the enclosed code. Yields a dict, filled when the block
    exits: {kernel name: KernelCounters}, e.g. "depthwise_fprop_kernel<float>". Sessions cannot
    be nested or run concurrently (RuntimeError)."""
    ops = torch.ops.convkernels_simt
    totals = {}
    ops.begin_counting()
    try:
        yield totals
    finally:
        names, values = ops.counter_totals()
        ops.end_counting()
        width = len(dataclasses.fields(KernelCounters))
        totals.update({name: KernelCounters(*values[i * width:(i + 1) * width])
                       for i, name in enumerate(names)})


__all__ = ["conv2d", "conv_transpose2d", "shuffled_conv2d", "schedule", "arch", "counters", "KernelCounters",
           "set_float32_precision", "tiles"]
