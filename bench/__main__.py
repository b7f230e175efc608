"""python -m bench: speed and accuracy of convkernels against torch on this machine's best device.

For every case of the chosen suites, in each dtype and layout: forward, grad-input and grad-weight
times of ours and torch's (alternating, same run), the ratio, achieved FLOP/s and bytes/s against
the roofs measured now, errors against float64, and extra memory (CUDA). Summaries: geometric
means per suite and direction, and the targets of bench/targets.py (PASS/FAIL, not asserted).

Examples:
  python -m bench --list                  # the suites, their cases and where each comes from
  python -m bench --quick                 # the smoke suite, under two minutes on a 2-core CPU
  python -m bench --suite resnet50 --suite mobilenet_v2 --dtype float32 --layout nchw
  python -m bench --suite all --tf32 --e2e
  python -m bench --simt-model            # a model of the CUDA kernels from emulator counters (bench/simt_model.py)
  python -m bench --tune h200.json --suite resnet50 --dtype bfloat16 --layout channels_last
                                          # a GPU's tile table (bench/tune.py)
Results go to the terminal and to bench/results/<device>-<date>/ (results.md, results.csv,
ratios.png, roofline.png; e2e.csv with --e2e). Progress goes to stderr.
"""
import argparse
import datetime
import os
import platform
import sys
import time

import torch

from bench import suites
from bench.e2e import MODELS, measure_model
from bench.host_memory import keep_freed_memory
from bench.measure import Timing, measure_case
from bench.roofline import measure_peaks, roofline
from bench.report import Style, print_summaries, print_table, write_files
from bench.targets import category, check


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", action="append", choices=["all", *suites.NAMES],
                        help="suites to run (repeatable; default: seed; all: every suite but quick)")
    parser.add_argument("--quick", action="store_true",
                        help="the quick suite in float32 NCHW, one short round: a smoke test")
    parser.add_argument("--list", action="store_true", help="print the suites and their cases, and exit")
    parser.add_argument("--simt-model", action="store_true",
                        help="print the SIMT model of the CUDA kernels (a model from emulator counters, not a "
                             "timing; with --quick one case), and exit")
    parser.add_argument("--tune", metavar="FILE",
                        help="time the CUDA implicit GEMMs' candidate tiles on the chosen cases and write the "
                             "fastest per problem to FILE, a tile table (convkernels.tiles; bench/tune.py), and exit")
    parser.add_argument("--batch", type=int, help="batch size (default: 32 on CUDA, 2 on CPU)")
    parser.add_argument("--dtype", action="append", choices=["float32", "bfloat16", "float16"],
                        help="repeatable (default: float32 and bfloat16, and float16 on CUDA)")
    parser.add_argument("--layout", action="append", choices=["nchw", "channels_last"],
                        help="repeatable (default: both)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--rounds", type=int, help="alternating timing rounds (default: 3)")
    parser.add_argument("--min-run-time", type=float,
                        help="seconds per side and round (default: 0.05 on CUDA, 0.2 on CPU)")
    parser.add_argument("--tf32", action="store_true",
                        help="also time ours and torch with TF32 convolutions (CUDA, float32): the tf32 column")
    parser.add_argument("--e2e", action="store_true",
                        help=f"also time a training step of whole models ({', '.join(MODELS)})")
    parser.add_argument("--e2e-resolution", type=int, help="image size for --e2e (default: 224 on CUDA, 64 on CPU)")
    parser.add_argument("--output", help="results folder (default: bench/results/<device>-<date>)")
    args = parser.parse_args(argv)

    args.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = args.device.type == "cuda"
    if args.quick:
        args.suite, args.dtype, args.layout = ["quick"], args.dtype or ["float32"], args.layout or ["nchw"]
        args.rounds, args.min_run_time = args.rounds or 1, args.min_run_time or 0.05
    names = args.suite or (suites.NAMES if args.list else ["seed"])
    args.suite = [n for n in suites.NAMES if n in names or ("all" in names and n != "quick")]
    args.dtype = args.dtype or ["float32", "bfloat16", *(["float16"] if gpu else [])]
    args.layout = args.layout or ["nchw", "channels_last"]
    args.batch = args.batch or (32 if gpu else 2)
    args.threads = args.threads or os.cpu_count()
    args.rounds = args.rounds or 3
    args.min_run_time = args.min_run_time or (0.05 if gpu else 0.2)
    args.e2e_resolution = args.e2e_resolution or (224 if gpu else 64)
    if args.tf32 and not gpu:
        print("--tf32 compares against cuDNN's TF32 convolutions: nothing to add on CPU", file=sys.stderr)
    return args


def print_suites(names):
    for name in names:
        workloads = suites.suite(name)
        print(f"{name}: {len(workloads)} cases, {sum(len(w.sources) for w in workloads)} layers")
        for w in workloads:
            print(f"  {w.name:<44}{category(w):<20}{w.describe()}")
            for source in w.sources:
                print(f"      {source}")


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def environment(args, name, host_memory_kept):
    gpu = args.device.type == "cuda"
    return dict(device=name, threads=args.threads, torch_version=torch.__version__,
                cuda_version=torch.version.cuda or "",
                cudnn_version=torch.backends.cudnn.version() if gpu else "",
                tf32=("off (on for both sides in the tf32 columns)" if args.tf32 else "off") if gpu else "n/a",
                host_memory="caching allocator" if gpu else
                ("freed memory kept (no page faults)" if host_memory_kept else "malloc defaults"))


class Progress:
    """One line per step on stderr: '[ 3/20 12s] resnet50: dense 3x3 ... float32 nchw'."""

    def __init__(self, total):
        self.total, self.done, self.start = total, 0, time.monotonic()

    def step(self, text):
        self.done += 1
        print(f"[{self.done:>{len(str(self.total))}}/{self.total} {time.monotonic() - self.start:4.0f}s] {text}",
              file=sys.stderr, flush=True)


def run_cases(args, timing, progress, failures):
    rows = []
    for suite in args.suite:
        for w in suites.suite(suite):
            case = dict(suite=suite, case=w.name, category=category(w), family=w.family(), layers=len(w.sources),
                        shape=w.describe(), batch=args.batch, source="; ".join(w.sources))
            for dtype in args.dtype:
                for layout in args.layout:
                    progress.step(f"{suite}: {w.name} {dtype} {layout}")
                    torch.manual_seed(0)
                    try:
                        measured = measure_case(w, getattr(torch, dtype), layout, args.batch, args.device, timing)
                    except RuntimeError as error:  # one failing case must not cost the others' numbers
                        print(f"    FAILED: {error}".splitlines()[0], file=sys.stderr, flush=True)
                        failures.append(f"{suite}: {w.name} {dtype} {layout}: {error}".splitlines()[0])
                        continue
                    # Each case's ratios as soon as they are known: a run cut short keeps them.
                    print("    ours/torch " + ", ".join(f"{r['direction']} {r['ratio']:.2f}" for r in measured),
                          file=sys.stderr, flush=True)
                    rows += [{**case, "dtype": dtype, "layout": layout, **r} for r in measured]
    return rows


def run_e2e(args, timing, progress):
    rows = []
    for model in MODELS:
        for layout in args.layout:
            progress.step(f"end to end: {model} {layout}")
            torch.manual_seed(0)
            memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            shape = (args.batch, 3, args.e2e_resolution, args.e2e_resolution)
            rows.append({**measure_model(model, shape, args.device, memory_format, timing), "layout": layout})
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        print_suites(args.suite)
        return
    if args.simt_model:
        from bench import simt_model
        simt_model.main(quick=args.quick)
        return
    torch.set_num_threads(args.threads)
    if args.tune:
        from bench import tune
        tune.main(args, Progress)
        return
    host_memory_kept = args.device.type == "cpu" and keep_freed_memory()
    if args.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.conv.fp32_precision = "ieee"    # TF32 off, for torch and for ours (which follows it)
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    name = device_name(args.device)
    header = f"{name} ({args.device.type}, {args.threads} threads), torch {torch.__version__}, batch {args.batch}"
    print(header, file=sys.stderr)

    peaks = measure_peaks(args.device, args.dtype, args.threads)
    timing = Timing(args.threads, args.rounds, args.min_run_time, args.tf32)
    cases = sum(len(suites.suite(s)) for s in args.suite) * len(args.dtype) * len(args.layout)
    progress = Progress(cases + (len(MODELS) * len(args.layout) if args.e2e else 0))
    failures = []
    rows = run_cases(args, timing, progress, failures)
    e2e_rows = run_e2e(args, timing, progress) if args.e2e else []
    # The roofline figures use the better of the peaks measured before and after the cases.
    peaks = peaks.best(measure_peaks(args.device, args.dtype, args.threads))
    rows = [{**r, **roofline(r, peaks)} for r in rows]
    verdicts = check(rows, args.device.type)

    print(f"\n{header}. {peaks.describe()}")
    style = Style(sys.stdout.isatty())
    print_table(rows, style, args.device.type == "cuda")
    print_summaries(rows, verdicts, e2e_rows, style)

    date = datetime.date.today().isoformat()
    slug = "".join(ch if ch.isalnum() else "-" for ch in name).strip("-").lower() or args.device.type
    folder = args.output or os.path.join(os.path.dirname(__file__), "results", f"{slug}-{date}")
    write_files(folder, f"convkernels vs torch on {name}, {date}", environment(args, name, host_memory_kept),
                peaks.describe(), rows, verdicts, e2e_rows)
    try:
        from bench import plots
    except ImportError:  # the GPU machine's own python may lack it: the tables still stand
        print("plots skipped: matplotlib is not installed", file=sys.stderr)
    else:
        plots.ratio_chart(os.path.join(folder, "ratios.png"), rows)
        plots.roofline_chart(os.path.join(folder, "roofline.png"), rows, peaks, name)
    print(f"wrote {folder}/")
    if failures:
        print(f"{len(failures)} cases failed:", *failures, sep="\n  ", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
