"""The results: a table and summaries in the terminal, results.md and results.csv (and e2e.csv)."""
import csv
import os

from bench.measure import DIRECTIONS, geomean

SIDES = ("ours", "torch", "ours_tf32", "torch_tf32")
FIELDS = [
    "suite", "case", "category", "family", "layers", "shape", "direction", "dtype", "layout", "batch",
    "ratio", "ratio_tf32", "flops", "bytes", "intensity",
    *[f"{side}_{figure}" for side in SIDES for figure in (
        "s", "spread_s", "gflops", "gbytes_s", "roofline_fraction", "bandwidth_fraction",
        "max_abs_error", "rel_error", "extra_bytes")],
    "source", "device", "threads", "torch_version", "cuda_version", "cudnn_version", "tf32", "host_memory",
]
E2E_FIELDS = ["model", "input", "layout", "ours_s", "ours_spread_s", "torch_s", "torch_spread_s", "ratio",
              "grad_rel_diff", "device", "threads", "torch_version", "cuda_version", "cudnn_version", "tf32", "host_memory"]


class Style:
    """Green for faster and PASS, red for slower and FAIL, when writing to a terminal."""

    def __init__(self, colour):
        self.colour = colour

    def paint(self, text, good):
        return f"\033[{32 if good else 31}m{text}\033[0m" if self.colour else text

    def ratio(self, ratio):
        return self.paint(f"{ratio:6.2f} {'faster' if ratio < 1 else 'slower'}", ratio < 1)


def _ms(seconds):
    return f"{seconds * 1e3:.3f}"


def _mb(nbytes):
    return "n/a" if nbytes is None else f"{nbytes / 2 ** 20:.1f}"


def suite_geomeans(rows):
    """{(suite, dtype, layout): {direction: (geomean ratio, cases)}}."""
    groups = {}
    for r in rows:
        groups.setdefault((r["suite"], r["dtype"], r["layout"]), {}).setdefault(r["direction"], []).append(r["ratio"])
    return {key: {d: (geomean(v), len(v)) for d, v in by_direction.items()} for key, by_direction in groups.items()}


def print_table(rows, style, gpu):
    columns = f"{'case':<40}{'direction':<12}{'dtype':<9}{'layout':<14}{'ours ms':>10}{'torch ms':>10}  {'ours/torch':<14}"
    columns += f"{'tf32':>6}" if any("ratio_tf32" in r for r in rows) else ""
    columns += f"{'roof ours':>10}{'torch':>7}{'rel err ours':>13}{'torch':>9}"
    columns += f"{'extra MB ours':>14}{'torch':>7}" if gpu else ""
    suite = None
    for r in rows:
        if r["suite"] != suite:
            suite = r["suite"]
            print(f"\n== {suite}\n{columns}")
        line = (f"{r['case'][:39]:<40}{r['direction']:<12}{r['dtype']:<9}{r['layout']:<14}{_ms(r['ours_s']):>10}"
                f"{_ms(r['torch_s']):>10}  {style.ratio(r['ratio'])}  ")
        line += f"{r['ratio_tf32']:6.2f}" if "ratio_tf32" in r else ""
        line += (f"{r['ours_roofline_fraction']:>10.1%}{r['torch_roofline_fraction']:>7.1%}"
                 f"{r['ours_rel_error']:>13.1e}{r['torch_rel_error']:>9.1e}")
        line += f"{_mb(r['ours_extra_bytes']):>14}{_mb(r['torch_extra_bytes']):>7}" if gpu else ""
        print(line)


def print_summaries(rows, verdicts, e2e_rows, style):
    print("\ngeometric mean ours/torch time (below 1: ours faster)")
    print(f"{'suite':<16}{'dtype':<10}{'layout':<15}" + "".join(f"{d:>13}" for d in DIRECTIONS) + "   cases")
    for (suite, dtype, layout), by_direction in suite_geomeans(rows).items():
        cells = "".join(f"{by_direction[d][0]:>13.2f}" if d in by_direction else f"{'':>13}" for d in DIRECTIONS)
        print(f"{suite:<16}{dtype:<10}{layout:<15}{cells}   {max(n for _, n in by_direction.values())}")
    if verdicts:
        print("\ntargets (geometric means over this run's cases; reported, not asserted)")
        for v in verdicts:
            measured = f"ratio {v.ratio:5.2f}" + (f", bandwidth {v.bandwidth_fraction:6.1%}"
                                                  if v.target.min_bandwidth else "")
            print(f"{v.category:<22}{v.direction:<12}{v.dtype:<10}{measured:<30}over {v.cases:3d} cases; "
                  f"target {v.target.describe():<46}{style.paint('PASS', True) if v.passed else style.paint('FAIL', False)}")
    if e2e_rows:
        print("\nend to end: one training step (forward, cross-entropy, backward)")
        for r in e2e_rows:
            print(f"{r['model']:<14}{r['input']:<18}{r['layout']:<14}ours {_ms(r['ours_s'])} ms, torch "
                  f"{_ms(r['torch_s'])} ms  {style.ratio(r['ratio'])}  gradients differ by {r['grad_rel_diff']:.1e}")


def write_csv(path, rows, fields, environment):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows({**r, **environment} for r in rows)


def write_markdown(path, title, environment, peaks_line, rows, verdicts, e2e_rows):
    lines = [f"# {title}", "",
             f"{environment['device']}, {environment['threads']} threads; torch {environment['torch_version']}, "
             f"CUDA {environment['cuda_version'] or 'n/a'}, cuDNN {environment['cudnn_version'] or 'n/a'}, "
             f"TF32 {environment['tf32']}; host memory: {environment['host_memory']}.", "", peaks_line, "",
             "Ratios are ours/torch time (below 1: ours faster), medians over alternating rounds; the "
             "roofline fraction is the time floor (FLOPs / peak FLOP/s or minimum bytes / copy bandwidth, "
             "whichever is longer) over the measured time; errors are against torch in float64.", "",
             "## Geometric means", "", "| suite | dtype | layout | " + " | ".join(DIRECTIONS) + " |",
             "|---|---|---|" + "---|" * len(DIRECTIONS)]
    for (suite, dtype, layout), by_direction in suite_geomeans(rows).items():
        cells = " | ".join(f"{by_direction[d][0]:.2f} ({by_direction[d][1]})" if d in by_direction else ""
                           for d in DIRECTIONS)
        lines.append(f"| {suite} | {dtype} | {layout} | {cells} |")
    if verdicts:
        lines += ["", "## Targets", "", "| category | direction | dtype | ratio | bandwidth | cases | target | |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {v.category} | {v.direction} | {v.dtype} | {v.ratio:.2f} | {v.bandwidth_fraction:.1%} | "
                  f"{v.cases} | {v.target.describe()} | {'PASS' if v.passed else 'FAIL'} |" for v in verdicts]
    tf32 = any("ratio_tf32" in r for r in rows)
    lines += ["", "## Cases", "",
              "| suite | case | layers | direction | dtype | layout | ours ms | torch ms | ours/torch |"
              + (" ours/torch in TF32 |" if tf32 else "")
              + " GFLOP/s ours | torch | GB/s ours | roofline ours | torch | max abs err ours | torch "
                "| rel err ours | torch | extra MB ours | torch |",
              "|---|---|---|---|---|---|---|---|---|" + ("---|" if tf32 else "") + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['suite']} | {r['case']} | {r['layers']} | {r['direction']} | {r['dtype']} | {r['layout']} | "
            f"{_ms(r['ours_s'])} ± {_ms(r['ours_spread_s'])} | {_ms(r['torch_s'])} ± {_ms(r['torch_spread_s'])} | "
            f"{r['ratio']:.2f} |" + (f" {r['ratio_tf32']:.2f} |" if "ratio_tf32" in r else (" |" if tf32 else ""))
            + f" {r['ours_gflops']:.1f} | {r['torch_gflops']:.1f} | {r['ours_gbytes_s']:.1f} | "
            f"{r['ours_roofline_fraction']:.1%} | {r['torch_roofline_fraction']:.1%} | {r['ours_max_abs_error']:.1e} | "
            f"{r['torch_max_abs_error']:.1e} | {r['ours_rel_error']:.1e} | {r['torch_rel_error']:.1e} | "
            f"{_mb(r['ours_extra_bytes'])} | {_mb(r['torch_extra_bytes'])} |")
    if e2e_rows:
        lines += ["", "## End to end: one training step", "",
                  "| model | input | layout | ours ms | torch ms | ours/torch | gradients' relative difference |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['input']} | {r['layout']} | {_ms(r['ours_s'])} ± {_ms(r['ours_spread_s'])} | "
                  f"{_ms(r['torch_s'])} ± {_ms(r['torch_spread_s'])} | {r['ratio']:.2f} | {r['grad_rel_diff']:.1e} |"
                  for r in e2e_rows]
    lines += ["", "Spreads (±) are interquartile ranges. Sources of every case: results.csv, or "
              "`python -m bench --list`.", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_files(folder, title, environment, peaks_line, rows, verdicts, e2e_rows):
    os.makedirs(folder, exist_ok=True)
    write_csv(os.path.join(folder, "results.csv"), rows, FIELDS, environment)
    if e2e_rows:
        write_csv(os.path.join(folder, "e2e.csv"), e2e_rows, E2E_FIELDS, environment)
    write_markdown(os.path.join(folder, "results.md"), title, environment, peaks_line, rows, verdicts, e2e_rows)
