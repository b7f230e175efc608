"""python -m bench.ceilings: the ceilings of this machine that every kernel is judged against,
measured now (bench/roofline.py's roofs): the copy bandwidth and the matrix-product rate in IEEE
float32, TF32, bfloat16 and float16. A GPU visit records them once (bench/gpu_check.sh), so that
its numbers can be read without the datasheet.
"""
import argparse
import contextlib
import os

import torch

from bench.roofline import measure_peaks

# An H200's ceilings, as main() below measured them there (bench/results/gpu-h200-2026-12-04/
# ceilings.md), in GB/s and TFLOP/s; float64, not measured, is the datasheet's FP64 rate without
# tensor cores, 34 TFLOP/s (NVIDIA H200 Tensor Core GPU datasheet, H200 SXM), which DFMA kernels get
# at best. bench/simt_model.py turns emulator counters into time floors with them.
H200 = {
    "copy bandwidth (GB/s, read + written)": 4252.8,
    "float32 matrix product (TFLOP/s)": 51.2,
    "bfloat16 matrix product (TFLOP/s)": 696.5,
    "float16 matrix product (TFLOP/s)": 661.4,
    "tf32 matrix product (TFLOP/s)": 347.7,
    "float64 FMA, datasheet (TFLOP/s)": 34.0,
}


@contextlib.contextmanager
def float32_precision(precision):
    """Matrix products and convolutions in float32 run as ``precision`` ("ieee" or "tf32")."""
    saved = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = precision
    try:
        yield
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved


def measure(device, threads):
    """{ceiling name: value} in GB/s and TFLOP/s."""
    gpu = device.type == "cuda"
    with float32_precision("ieee"):
        peaks = measure_peaks(device, ["float32", "bfloat16", *(["float16"] if gpu else [])], threads)
    ceilings = {"copy bandwidth (GB/s, read + written)": peaks.bandwidth / 1e9}
    ceilings.update({f"{d} matrix product (TFLOP/s)": f / 1e12 for d, f in peaks.flops.items()})
    if gpu:
        with float32_precision("tf32"):
            tf32 = measure_peaks(device, ["float32"], threads)
        ceilings["tf32 matrix product (TFLOP/s)"] = tf32.flops["float32"] / 1e12
    return ceilings


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.ceilings", description=__doc__)
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--output", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    lines = [f"Ceilings measured on {name}, torch {torch.__version__}", "",
             "| ceiling | measured |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in measure(device, os.cpu_count()).items()]
    print("\n".join(lines))
    if args.output:
        with open(args.output, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
