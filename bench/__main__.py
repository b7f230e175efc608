"""python -m bench: speed and accuracy of convkernels against torch on this machine's best device.

Examples:
  python -m bench --quick                 # the smoke suite, under two minutes on a 2-core CPU
  python -m bench --suite seed --batch 8  # one case per convolution type
Results go to the terminal and to bench/results/<device>-<date>/ (results.md, results.csv).
"""
import argparse
import csv
import datetime
import os
import platform
import sys

import torch

import convkernels  # noqa: F401  (registers torch.ops.convkernels)
from bench.measure import (DIRECTIONS, alternate, direction_functions, geomean, measure_peaks,
                           relative_error, torch_forward)
from bench.workloads import SUITES

FIELDS = ["suite", "case", "family", "source", "direction", "dtype", "layout", "batch",
          "ours_s", "ours_spread_s", "torch_s", "torch_spread_s", "ratio", "ours_gflops",
          "ours_gbytes_s", "roofline_fraction", "ours_rel_error", "torch_rel_error", "device",
          "torch_version", "cuda_version", "cudnn_version", "tf32"]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", action="append", choices=sorted(SUITES),
                        help="suites to run (repeatable; default: seed)")
    parser.add_argument("--quick", action="store_true", help="the small smoke suite, one dtype")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: 8 on GPU, 2 on CPU)")
    parser.add_argument("--dtype", action="append", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--layout", action="append", choices=["nchw", "channels_last"])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--min-run-time", type=float, default=0.2, help="seconds per timing")
    parser.add_argument("--output", default=None, help="results folder")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    suites = ["quick"] if args.quick else (args.suite or ["seed"])
    dtypes = [getattr(torch, d) for d in (args.dtype or ["float32"])]
    layouts = args.layout or ["nchw"]
    batch = args.batch or (8 if device.type == "cuda" else 2)
    if args.quick:
        args.rounds, args.min_run_time = 1, 0.05
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    peak_flops, peak_bw = measure_peaks(device, threads)
    print(f"device: {device_name} ({device.type}, {threads} threads), torch {torch.__version__}; "
          f"measured peaks: {peak_flops / 1e9:.1f} GFLOP/s (float32 matmul), {peak_bw / 1e9:.1f} GB/s (copy)")

    jobs = [(s, wl, dt, lay) for s in suites for wl in SUITES[s] for dt in dtypes for lay in layouts]
    rows = []
    for i, (suite, wl, dtype, layout) in enumerate(jobs, 1):
        print(f"[{i}/{len(jobs)}] {suite}: {wl.name} {str(dtype)[6:]} {layout}", file=sys.stderr, flush=True)
        rows += run_case(suite, wl, dtype, layout, batch, device, threads, args, peak_flops, peak_bw)

    for row in rows:
        row.update(device=device_name, torch_version=torch.__version__, cuda_version=torch.version.cuda or "",
                   cudnn_version=torch.backends.cudnn.version() if device.type == "cuda" else "",
                   tf32="off" if device.type == "cuda" else "n/a")
    report(rows, suites, device, device_name, args.output)


def run_case(suite, wl, dtype, layout, batch, device, threads, args, peak_flops, peak_bw):
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x64 = torch.randn((batch, *wl.input_shape), dtype=torch.float64)
    w64 = torch.randn(wl.weight_shape, dtype=torch.float64)
    x = x64.to(device, dtype).contiguous(memory_format=fmt)
    w = w64.to(device, dtype).contiguous(memory_format=fmt)
    y_shape = torch_forward(wl, x, w).shape
    gy64 = torch.randn(y_shape, dtype=torch.float64)
    gy = gy64.to(device, dtype).contiguous(memory_format=fmt)
    functions = direction_functions(wl, x, w, gy)
    references = direction_functions(wl, x.double().cpu(), w.double().cpu(), gy.double().cpu())
    out_hw = tuple(y_shape[2:]) if not wl.transposed else None
    flops = wl.flops(batch, out_hw)
    element = x.element_size()
    rows = []
    for direction in DIRECTIONS:
        ours, theirs = functions[direction]
        reference = references[direction][1]()
        times = alternate(ours, theirs, device, threads, args.rounds, args.min_run_time)
        # Minimum traffic: every operand and the result once.
        bytes_moved = (x.numel() + w.numel() + gy.numel()) * element
        floor = max(flops / peak_flops, bytes_moved / peak_bw)
        t_ours, t_torch = times["ours"][0], times["torch"][0]
        rows.append(dict(
            suite=suite, case=wl.name, family=wl.family(), source=wl.source, direction=direction,
            dtype=str(dtype)[6:], layout=layout, batch=batch, ours_s=t_ours, ours_spread_s=times["ours"][1],
            torch_s=t_torch, torch_spread_s=times["torch"][1], ratio=t_ours / t_torch,
            ours_gflops=flops / t_ours / 1e9, ours_gbytes_s=bytes_moved / t_ours / 1e9,
            roofline_fraction=floor / t_ours,
            ours_rel_error=relative_error(ours(), reference), torch_rel_error=relative_error(theirs(), reference)))
    return rows


def report(rows, suites, device, device_name, output):
    header = f"{'case':<26}{'dir':<12}{'dtype':<9}{'layout':<14}{'ours ms':>9}{'torch ms':>10}{'ours/torch':>12}{'roofline':>10}{'rel err':>10}"
    print(header)
    for r in rows:
        mark = "faster" if r["ratio"] < 1 else "slower"
        print(f"{r['case']:<26}{r['direction']:<12}{r['dtype']:<9}{r['layout']:<14}{r['ours_s'] * 1e3:>9.3f}"
              f"{r['torch_s'] * 1e3:>10.3f}{r['ratio']:>8.2f} {mark:<6}{r['roofline_fraction']:>7.1%}"
              f"{r['ours_rel_error']:>10.1e}")
    summary = []
    for suite in suites:
        for direction in DIRECTIONS:
            ratios = [r["ratio"] for r in rows if r["suite"] == suite and r["direction"] == direction]
            summary.append((suite, direction, geomean(ratios), len(ratios)))
            print(f"geometric mean ours/torch, {suite} {direction}: {summary[-1][2]:.2f} over {len(ratios)} cases")

    date = datetime.date.today().isoformat()
    slug = "".join(ch if ch.isalnum() else "-" for ch in device_name).strip("-").lower() or device.type
    folder = output or os.path.join(os.path.dirname(__file__), "results", f"{slug}-{date}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(folder, "results.md"), "w") as f:
        f.write(f"# convkernels vs torch on {device_name}, {date}\n\n")
        f.write(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device {device.type}\n\n")
        f.write("| suite | direction | geomean ours/torch | cases |\n|---|---|---|---|\n")
        for suite, direction, g, n in summary:
            f.write(f"| {suite} | {direction} | {g:.2f} | {n} |\n")
        f.write("\n| case | direction | dtype | layout | ours ms | torch ms | ours/torch | roofline | rel err ours | rel err torch |\n")
        f.write("|---|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r['case']} | {r['direction']} | {r['dtype']} | {r['layout']} | {r['ours_s'] * 1e3:.3f} | "
                    f"{r['torch_s'] * 1e3:.3f} | {r['ratio']:.2f} | {r['roofline_fraction']:.1%} | "
                    f"{r['ours_rel_error']:.1e} | {r['torch_rel_error']:.1e} |\n")
    print(f"wrote {folder}/results.md and results.csv")


if __name__ == "__main__":
    main()
