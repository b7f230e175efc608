"""Timing, accuracy and roofline measurements for one workload: ours against torch, same run."""
import math
import statistics

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

import convkernels
from convkernels.functional import _pair

DIRECTIONS = ("forward", "grad_input", "grad_weight")


def _normalised(kwargs):
    return dict(stride=_pair(kwargs.get("stride", 1), "stride"),
                padding=_pair(kwargs.get("padding", 0), "padding"),
                dilation=_pair(kwargs.get("dilation", 1), "dilation"),
                output_padding=_pair(kwargs.get("output_padding", 0), "output_padding"),
                groups=kwargs.get("groups", 1))


def _torch_backward(workload, grad_output, x, w, mask):
    a = _normalised(workload.kwargs)
    return torch.ops.aten.convolution_backward(
        grad_output, x, w, None, a["stride"], a["padding"], a["dilation"], workload.transposed,
        a["output_padding"], a["groups"], mask)


def torch_forward(workload, x, w):
    fn = F.conv_transpose2d if workload.transposed else F.conv2d
    return fn(x, w, **workload.kwargs)


def direction_functions(workload, x, w, grad_output):
    """{direction: (ours, torch)}: zero-argument callables computing the same tensor."""
    a = _normalised(workload.kwargs)
    ops = torch.ops.convkernels
    s, p, d, g, op = a["stride"], a["padding"], a["dilation"], a["groups"], a["output_padding"]
    if workload.transposed:
        ours = {
            "forward": lambda: ops.conv_transpose2d(x, w, None, s, p, op, g, d),
            "grad_input": lambda: ops.conv2d(grad_output, w, None, s, p, d, g),
            "grad_weight": lambda: ops.conv2d_weight(grad_output, x, list(w.shape), s, p, d, g),
        }
    else:
        out_pad = [x.shape[2 + i] - ((grad_output.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (w.shape[2 + i] - 1) + 1)
                   for i in range(2)]
        ours = {
            "forward": lambda: ops.conv2d(x, w, None, s, p, d, g),
            "grad_input": lambda: ops.conv_transpose2d(grad_output, w, None, s, p, out_pad, g, d),
            "grad_weight": lambda: ops.conv2d_weight(x, grad_output, list(w.shape), s, p, d, g),
        }
    theirs = {
        "forward": lambda: torch_forward(workload, x, w),
        "grad_input": lambda: _torch_backward(workload, grad_output, x, w, [True, False, False])[0],
        "grad_weight": lambda: _torch_backward(workload, grad_output, x, w, [False, True, False])[1],
    }
    return {k: (ours[k], theirs[k]) for k in DIRECTIONS}


def relative_error(actual, reference):
    """max |actual - reference| / max |reference|, in float64."""
    scale = reference.abs().max().item() or 1.0
    return (actual.double().cpu() - reference).abs().max().item() / scale


def median_time(fn, device, threads, min_run_time):
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return measurement.median, measurement.iqr


def alternate(ours, theirs, device, threads, rounds, min_run_time):
    """Times ours and torch's alternately (so drift hits both alike); median of the round medians
    and the spread (max - min of the round medians) of each."""
    times = {"ours": [], "torch": []}
    for fn in (ours, theirs):  # warm-up: caches, cuDNN autotuning, lazy initialisation
        fn()
    for _ in range(rounds):
        times["ours"].append(median_time(ours, device, threads, min_run_time)[0])
        times["torch"].append(median_time(theirs, device, threads, min_run_time)[0])
    return {k: (statistics.median(v), max(v) - min(v)) for k, v in times.items()}


def measure_peaks(device, threads):
    """The machine's peaks measured now: FLOP/s of a large float32 matrix product (torch's BLAS),
    and bytes/s of a large copy (read + write)."""
    n = 2048 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    t, _ = median_time(lambda: torch.mm(a, b), device, threads, 0.5)
    flops = 2 * n ** 3 / t
    src = torch.empty(64 * 2 ** 20 // 4, device=device)
    dst = torch.empty_like(src)
    t, _ = median_time(lambda: dst.copy_(src), device, threads, 0.5)
    return flops, 2 * src.numel() * 4 / t


def geomean(values):
    values = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")
