"""python -m bench --tune FILE: this GPU's tile table (convkernels.tiles) for the chosen suites.

For every case, dtype, layout and direction (float32 also in TF32 with --tf32), convkernels.tiles
times each block tile that the implicit GEMMs' launches can take, and FILE gets the fastest per
problem. Printed: per choice, the heuristic's tile and time against the best one's, and the
geometric mean of what the table saves over the heuristic. Use the table with
CONVKERNELS_TILE_TABLE=FILE (the bench included) or convkernels.tiles.load(FILE).
"""
import sys

import torch

from bench import suites
from bench.measure import DIRECTIONS, case_operands, direction_functions, geomean, with_tf32
from convkernels import tiles


def tune_case(w, dtype, layout, batch, device, tf32, timer, library=(torch.ops.convkernels, tiles)):
    """(table, rows) of one workload in one dtype and layout, every direction, its candidates timed
    by timer(fn); `library`: the ops and their tile table (the emulator's: torch.ops.convkernels_simt
    and convkernels.simt.tiles)."""
    ops, tables = library
    torch.manual_seed(0)
    functions = direction_functions(w, *case_operands(w, dtype, layout, batch, device), ops=ops)
    maths = [("", lambda fn: fn)] + ([(" TF32", with_tf32)] if tf32 and dtype == torch.float32 else [])
    table, rows = {}, []
    for direction in DIRECTIONS:
        ours = functions[direction][0]
        for math, wrap in maths:
            tuned, report = tables.tune(wrap(ours), timer=timer, progress=lambda text: print(
                f"      tuning {direction}{math}: {text}", file=sys.stderr, flush=True))
            table.update(tuned)
            rows += [dict(direction=direction + math, key=t.key, heuristic=t.heuristic, best=t.best,
                          heuristic_s=t.seconds.get(t.heuristic, float("nan")), best_s=t.seconds[t.best],
                          speedup=t.speedup, rejected=t.rejected) for t in report]
    return table, rows


def main(args, progress_type):
    device = args.device
    torch.backends.cudnn.conv.fp32_precision = "ieee"  # as the bench: float32 in IEEE unless TF32 is asked for
    cases = [(s, w) for s in args.suite for w in suites.suite(s)]
    progress = progress_type(len(cases) * len(args.dtype) * len(args.layout))
    table, rows = {}, []
    for suite, w in cases:
        for dtype in args.dtype:
            for layout in args.layout:
                progress.step(f"{suite}: {w.name} {dtype} {layout}")
                case_table, case_rows = tune_case(w, getattr(torch, dtype), layout, args.batch, device, args.tf32,
                                                  lambda fn: tiles.benchmark_timer(fn, args.min_run_time))
                table.update(case_table)
                rows += [{"case": f"{suite}: {w.name} {dtype} {layout}", **r} for r in case_rows]
                for r in case_rows:
                    print(f"    {r['direction']}: {r['heuristic']} -> {r['best']} ({r['speedup']:.2f}x)",
                          file=sys.stderr, flush=True)
    tiles.save(table, args.tune)
    if not rows:
        print(f"No launch chose among tiles on {device} (the tile table is the CUDA implicit GEMMs'): "
              f"{args.tune} holds an empty table.")
        return
    print("| case | direction | heuristic | best | heuristic ms | best ms | speedup | rejected |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        rejected = "; ".join(f"{t}: {why}" for t, why in r["rejected"].items()) or "-"
        print(f"| {r['case']} | {r['direction']} | {r['heuristic']} | {r['best']} | {1e3 * r['heuristic_s']:.3f} | "
              f"{1e3 * r['best_s']:.3f} | {r['speedup']:.2f} | {rejected} |")
    changed = sum(r["heuristic"] != r["best"] for r in rows)
    print(f"\n{len(rows)} tile choices, {changed} changed from the heuristic; geometric mean speedup over the "
          f"heuristic {geomean([r['speedup'] for r in rows]):.3f}x. Table: {args.tune} ({len(table)} entries).")
