"""Measuring one workload: ours against torch in the same run, in every direction.

Time: each side is timed by torch.utils.benchmark (blocks of calls, synchronised on CUDA) in
alternating rounds after a warm-up, so that drift in clocks or load hits both sides alike; the
median and the interquartile range are over every timed block of every round. Float32 runs in
IEEE float32 on both sides (the harness turns TF32 off; our CUDA kernels follow torch's setting);
with --tf32 both sides are timed again with TF32 convolutions on (the *_tf32 sides).
Accuracy: the largest absolute error, and that divided by the largest |reference|, against torch
in float64 on the same (already rounded) operands.
Memory: on CUDA, the peak of allocated memory during one call beyond what was allocated before it
and the result's own storage (workspaces, layout copies); n/a on CPU, where ATen's allocations
cannot be attributed to one call.
The roofline figures are computed from these afterwards (bench/roofline.py).
"""
import math
import statistics
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

import convkernels  # noqa: F401  (registers torch.ops.convkernels)

DIRECTIONS = ("forward", "grad_input", "grad_weight")


@dataclass(frozen=True)
class Timing:
    threads: int
    rounds: int
    min_run_time: float   # seconds per side and round
    tf32: bool            # also time both sides with TF32 convolutions (CUDA, float32)


def direction_functions(w, x, weight, grad_output, ops=torch.ops.convkernels):
    """{direction: (ours, torch)}: zero-argument callables computing the same tensor (ours by `ops`,
    the library: convkernels, or convkernels_simt for the emulated CUDA kernels)."""
    s, p, d, g = w.stride, w.padding, w.dilation, w.groups
    if w.transposed:
        ours = {
            "forward": lambda: ops.conv_transpose2d(x, weight, None, s, p, w.output_padding, g, d),
            "grad_input": lambda: ops.conv2d(grad_output, weight, None, s, p, d, g),
            "grad_weight": lambda: ops.conv2d_weight(grad_output, x, list(weight.shape), s, p, d, g),
        }
        forward = lambda: F.conv_transpose2d(x, weight, None, s, p, w.output_padding, g, d)  # noqa: E731
    else:
        # The output padding that makes dgrad's output the input's size (strided rows left over).
        out_pad = [x.shape[2 + i] - ((grad_output.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (w.kernel[i] - 1) + 1)
                   for i in range(2)]
        ours = {
            "forward": lambda: ops.conv2d(x, weight, None, s, p, d, g),
            "grad_input": lambda: ops.conv_transpose2d(grad_output, weight, None, s, p, out_pad, g, d),
            "grad_weight": lambda: ops.conv2d_weight(x, grad_output, list(weight.shape), s, p, d, g),
        }
        forward = lambda: F.conv2d(x, weight, None, s, p, d, g)  # noqa: E731

    def backward(mask):
        return torch.ops.aten.convolution_backward(grad_output, x, weight, None, s, p, d, w.transposed,
                                                   w.output_padding, g, mask)
    theirs = {
        "forward": forward,
        "grad_input": lambda: backward([True, False, False])[0],
        "grad_weight": lambda: backward([False, True, False])[1],
    }
    return {k: (ours[k], theirs[k]) for k in DIRECTIONS}


def with_tf32(fn):
    """``fn`` with float32 convolutions allowed in TF32, cuDNN's and ours, which follow the same
    setting (the harness otherwise runs them in IEEE float32); cuDNN's benchmark cache keys on it."""
    def run():
        torch.backends.cudnn.conv.fp32_precision = "tf32"
        try:
            return fn()
        finally:
            torch.backends.cudnn.conv.fp32_precision = "ieee"
    return run


def errors(actual, reference):
    """(max |actual - reference|, that / max |reference|), in float64."""
    worst = (actual.double() - reference).abs().max().item()
    return worst, worst / (reference.abs().max().item() or 1.0)


def time_alternating(contenders, timing):
    """{name: (median, interquartile range)} of each zero-argument callable, in seconds."""
    for fn in contenders.values():  # warm-up: caches, cuDNN autotuning, lazy initialisation
        fn()
    times = {name: [] for name in contenders}
    for _ in range(timing.rounds):
        for name, fn in contenders.items():
            timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=timing.threads)
            times[name] += timer.blocked_autorange(min_run_time=timing.min_run_time).times
    return {name: (statistics.median(t), _iqr(t)) for name, t in times.items()}


def _iqr(times):
    if len(times) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(times, n=4)
    return q3 - q1


def extra_memory(fn, device):
    """Peak bytes allocated by one call of ``fn`` beyond its result; None off CUDA."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    result = fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before - result.untyped_storage().nbytes()


def geomean(values):
    values = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def case_operands(w, dtype, layout, batch, device):
    """(x, weight, grad_output) of a workload: fresh normal values, rounded to dtype, in layout."""
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format

    def operand(shape):
        return torch.randn(shape, device=device).to(dtype).contiguous(memory_format=memory_format)

    return operand((batch, *w.input_shape)), operand(w.weight_shape), operand((batch, *w.output_shape()))


def measure_case(w, dtype, layout, batch, device, timing):
    """One row per direction: times, errors and extra memory of each side, and the case's FLOPs
    and minimum bytes (bench/roofline.py places them under the roofs)."""
    x, weight, grad_output = case_operands(w, dtype, layout, batch, device)
    functions = direction_functions(w, x, weight, grad_output)
    # The reference sees the operands after rounding to dtype: errors are the kernels' own.
    references = direction_functions(w, x.double(), weight.double(), grad_output.double())
    flops, nbytes = w.flops(batch), w.min_bytes(batch, x.element_size())
    use_tf32 = timing.tf32 and device.type == "cuda" and dtype == torch.float32
    rows = []
    for direction in DIRECTIONS:
        ours, theirs = functions[direction]
        contenders = {"ours": ours, "torch": theirs}
        if use_tf32:
            contenders.update(ours_tf32=with_tf32(ours), torch_tf32=with_tf32(theirs))
        reference = references[direction][1]()
        times = time_alternating(contenders, timing)
        row = dict(direction=direction, flops=flops, bytes=nbytes, intensity=flops / nbytes,
                   ratio=times["ours"][0] / times["torch"][0])
        if use_tf32:
            row["ratio_tf32"] = times["ours_tf32"][0] / times["torch_tf32"][0]
        for side, fn in contenders.items():
            max_abs, relative = errors(fn(), reference)
            row.update({f"{side}_s": times[side][0], f"{side}_spread_s": times[side][1],
                        f"{side}_max_abs_error": max_abs, f"{side}_rel_error": relative,
                        f"{side}_extra_bytes": extra_memory(fn, device)})
        rows.append(row)
    return rows
