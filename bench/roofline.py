"""The roofline: the machine's roofs, measured in the same run as the kernels (not taken from a
datasheet), and each case's place under them.

Compute roof: FLOP/s of a large matrix product in each dtype, run through both of torch's paths for
it (torch.mm, i.e. the BLAS: cuBLAS, or MKL on CPU; and a 1x1 convolution: cuDNN or oneDNN), the
faster of the two: on some CPUs one library runs at half the rate of the other (MKL takes its AVX2
path on AMD processors). On CUDA with TF32 off, so float32's roof is IEEE float32's; the *_tf32
sides (--tf32) are placed under that same roof.
Memory roof: bytes/s of a large copy, counting the bytes read and written.
A roof is what the machine can do, so each is the fastest timed block, and the harness measures
them before and after the cases and keeps the better (on a shared machine, a neighbour's load
would otherwise lower the roof and flatter the kernels). A fraction above 100% means a case beat
a measured roof: its operands stayed in cache, or its backend outran both matrix products.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer


@dataclass(frozen=True)
class Peaks:
    flops: dict        # dtype name -> FLOP/s
    bandwidth: float   # bytes/s

    def best(self, other):
        return Peaks({d: max(f, other.flops[d]) for d, f in self.flops.items()}, max(self.bandwidth, other.bandwidth))

    def describe(self):
        return ("Measured roofs: " + ", ".join(f"{d} {f / 1e9:.0f} GFLOP/s" for d, f in self.flops.items())
                + f" (matrix product), {self.bandwidth / 1e9:.1f} GB/s (copy).")


def _fastest(fn, threads):
    fn()
    return min(Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads).blocked_autorange(min_run_time=0.3).times)


def measure_peaks(device, dtypes, threads):
    # Large enough to run at full rate and, for the copy, to overflow the last-level cache.
    n, pixels, copy_bytes = (8192, 64, 2 ** 30) if device.type == "cuda" else (2048, 32, 2 ** 26)
    flops = {}
    for dtype in dtypes:   # names: "float32", ...
        a, b = (torch.randn(n, n, device=device).to(getattr(torch, dtype)) for _ in range(2))
        x = torch.randn(1, n, pixels, pixels, device=device).to(getattr(torch, dtype))
        w = b.view(n, n, 1, 1)
        flops[dtype] = max(2 * n ** 3 / _fastest(lambda: torch.mm(a, b), threads),
                           2 * n * n * pixels ** 2 / _fastest(lambda: F.conv2d(x, w), threads))
    # Both filled: pages never written may all map the kernel's one zero page, whose reads hit
    # the cache (on the CPU that once reported 111 GB/s for a 47 GB/s copy).
    src = torch.ones(copy_bytes, dtype=torch.uint8, device=device)
    dst = torch.zeros_like(src)
    return Peaks(flops, 2 * copy_bytes / _fastest(lambda: dst.copy_(src), threads))


def roofline(row, peaks):
    """Achieved rates of each timed side of a result row, and their fractions of the roofs: the
    roofline fraction is the time floor (FLOPs at peak FLOP/s or minimum bytes at copy bandwidth,
    whichever takes longer) over the time; the bandwidth fraction is bytes/s over copy bandwidth."""
    flops, nbytes = row["flops"], row["bytes"]
    floor = max(flops / peaks.flops[row["dtype"]], nbytes / peaks.bandwidth)
    figures = {}
    for side in ("ours", "torch", "ours_tf32", "torch_tf32"):
        if f"{side}_s" in row:
            t = row[f"{side}_s"]
            figures.update({f"{side}_gflops": flops / t / 1e9, f"{side}_gbytes_s": nbytes / t / 1e9,
                            f"{side}_roofline_fraction": floor / t,
                            f"{side}_bandwidth_fraction": nbytes / t / peaks.bandwidth})
    return figures
