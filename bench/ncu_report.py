"""python -m bench.ncu_report NCU_CSV: the Nsight Compute metrics of bench/ncu_cases.py's kernels
(gpu_check.sh's ncu step writes the CSV) as one markdown table, a row per kernel launch.

ncu_cases runs its cases in order, each starting with its one forward kernel; so a launch belongs
to the case of the last forward kernel before it.
"""
import csv
import re
import sys

from bench.ncu_cases import CASES

DTYPES = ("float32", "bfloat16")


def _number(text):
    return float(text.replace(",", "")) if text else float("nan")


def launches(path):
    """[(kernel name, {metric: value})] in launch order, from ncu's --csv log."""
    with open(path) as f:
        lines = [line for line in f if line.startswith('"')]
    by_id = {}
    for record in csv.DictReader(lines):
        name, metrics = by_id.setdefault(record["ID"], (record["Kernel Name"], {}))
        metrics[record["Metric Name"]] = _number(record["Metric Value"])
    return [by_id[k] for k in sorted(by_id, key=int)]


def short_name(kernel):
    """'general_fprop_kernel<c10::BFloat16, ..., TileShape<128, 64, 8, 8, 4>, 0>' -> 'general_fprop 128x64x8'."""
    name = re.search(r"(\w+)_kernel<", kernel).group(1)
    tile = re.search(r"TileShape<(\d+), (\d+), (\d+)", kernel)
    return f"{name} {'x'.join(tile.groups())}" if tile else name


def table(path):
    cases = [f"{name} {dtype}" for dtype in DTYPES for name, *_ in CASES]
    lines = ["| case | kernel | us | DRAM % of peak | tensor pipe % | warps active % | shared wavefronts | "
             "bank-conflict share | global sectors / request |", "|---|---|---|---|---|---|---|---|---|"]
    case = -1
    for kernel, m in launches(path):
        if "fprop" in kernel:
            case += 1
        wavefronts = m["l1tex__data_pipe_lsu_wavefronts_mem_shared.sum"]
        conflicts = m["l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum"]
        requests = m["l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum"]
        lines.append(
            f"| {cases[case] if 0 <= case < len(cases) else '?'} | {short_name(kernel)} | "
            f"{m['gpu__time_duration.sum'] / 1e3:.1f} | "
            f"{m['dram__throughput.avg.pct_of_peak_sustained_elapsed']:.1f} | "
            f"{m['sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active']:.1f} | "
            f"{m['sm__warps_active.avg.pct_of_peak_sustained_active']:.1f} | {wavefronts:.0f} | "
            f"{conflicts / wavefronts if wavefronts else 0:.0%} | "
            f"{m['l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum'] / requests if requests else 0:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1]))
