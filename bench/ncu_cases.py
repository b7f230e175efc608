"""One realistic call of every CUDA kernel family (forward, grad_input, grad_weight) in float32 and
bfloat16, for Nsight Compute: `ncu --metrics "$(python -m bench.ncu_cases --metrics)" ... python -m
bench.ncu_cases` (bench/gpu_check.sh's ncu step). The shapes are real layers at batch 8, large
enough for the DRAM and tensor-pipe figures to mean something and small enough that ncu's replays
of every kernel stay within a minute or two.
"""
import sys

import torch

import convkernels

# What Nsight Compute reports for each kernel: how much of the DRAM bandwidth and of the tensor
# pipe it used, how full the SMs were, and the shared-memory bank conflicts.
METRICS = [
    "gpu__time_duration.sum",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed",
    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active",
    "sm__warps_active.avg.pct_of_peak_sustained_active",
    "l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum",
    "l1tex__data_pipe_lsu_wavefronts_mem_shared.sum",
    "l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum",
    "l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum",
]

CASES = [
    # (name, input shape, weight shape, kwargs)
    ("dense 3x3 64->64 @56", (8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1)),
    ("pointwise 64->256 @56", (8, 64, 56, 56), (256, 64, 1, 1), {}),
    ("grouped 3x3 g32 128->128 @56", (8, 128, 56, 56), (128, 4, 3, 3), dict(padding=1, groups=32)),
    ("depthwise 3x3 144 @56", (8, 144, 56, 56), (144, 1, 3, 3), dict(padding=1, groups=144)),
    ("depthwise 31x31 128 @32", (8, 128, 32, 32), (128, 1, 31, 31), dict(padding=15, groups=128)),
]


def main():
    if "--metrics" in sys.argv:
        print(",".join(METRICS))
        return
    for dtype in (torch.float32, torch.bfloat16):
        for name, input_shape, weight_shape, kwargs in CASES:
            x = torch.randn(input_shape, device="cuda", dtype=dtype, requires_grad=True)
            w = torch.randn(weight_shape, device="cuda", dtype=dtype, requires_grad=True)
            y = convkernels.conv2d(x, w, **kwargs)        # fprop
            y.backward(torch.randn_like(y))                 # dgrad and wgrad
            torch.cuda.synchronize()
            print(f"ran {name} {dtype}", flush=True)


if __name__ == "__main__":
    main()
