"""python -m bench --simt-model: a MODEL of the CUDA kernels on an H200, from the SIMT emulator's
counters (convkernels.simt.counters). Not a timing: it ranks kernels and finds waste.

Every CUDA kernel runs on small representative cases under the emulator. Per case and pass
(fprop, dgrad, wgrad) it prints:
  layout          the activations' memory format (the GEMM cases run channels_last, their kernels' own;
                  an NCHW caller adds a relayout of the input and of the output, torch copies that
                  the emulator does not count)
  sectors/req     global sectors per warp-wide request (4: 32 coalesced 4-byte lanes; 32: scattered)
  wavefronts/req  shared-memory wavefronts per request (1 for conflict-free 4-byte accesses, 4 for
                  128-bit ones and ldmatrix.x4; more is bank conflicts)
  bank conflicts  the wavefronts beyond the fewest each shared request could take, in all
  FMA/shared B    FMAs issued (an mma.m16n8k8 is 1024, an m16n8k16 2048, a wgmma's m64n8 slice 8192
                  in half types, 4096 in TF32) per byte of shared-memory wavefronts (128 bytes each):
                  how much math each byte staged in shared memory feeds (wgmma's own operand reads
                  are not counted)
  model floor     the H200 time the counters imply: every sector (of the loads, the stores and the
                  bulk (TMA) copies) a DRAM transfer at the measured copy rate (no cache reuse, so
                  an upper bound of the traffic) against the issued math at peak (FFMA at
                  float32's rate, DFMA at float64's, MMA at the tensor rate of the case's type),
                  whichever is longer
  ideal floor     the same for the shape itself: compulsory bytes (the pass's tensors once) against
                  its useful FLOPs (2*N*K*C/g*R*S*P*Q) at the best rate of the case's type
  model/ideal     how far the kernel's own traffic and math put it from the shape's floor
Rates: bench/ceilings.py's H200 numbers. Cases marked sm_90a run the kernels an H200 takes
(wgmma for the tensor-core GEMMs); the others those of an sm_80 GPU. The model gives mma.sync and
wgmma the same peak rate: how much of it each reaches only a GPU measures.
"""
import dataclasses
import re

import torch

from bench.ceilings import H200

BANDWIDTH = H200["copy bandwidth (GB/s, read + written)"] * 1e9
FLOPS = {  # per second, by the type the case multiplies in
    "float32": H200["float32 matrix product (TFLOP/s)"] * 1e12,
    "tf32": H200["tf32 matrix product (TFLOP/s)"] * 1e12,
    "bfloat16": H200["bfloat16 matrix product (TFLOP/s)"] * 1e12,
    "float16": H200["float16 matrix product (TFLOP/s)"] * 1e12,
    "float64": H200["float64 FMA, datasheet (TFLOP/s)"] * 1e12,
}
SECTOR_BYTES = 32
WAVEFRONT_BYTES = 128


def tensor_fma(total, math_type):
    """FMAs of the tensor-core instructions `total` counted: 16 x 8 x k an mma.sync, 64 x 8 x k a
    wgmma's m64n8 slice (k 16 for half types, 8 in TF32)."""
    wgmma_k = 8 if math_type == "tf32" else 16
    mma_sync = 4 * total.mma_1684 + 8 * total.mma_1688 + 16 * total.mma_16816
    return 16 * 8 * mma_sync + 64 * 8 * wgmma_k * total.wgmma_m64n8


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    channels: int  # C and K
    size: int      # H and W
    kernel: int    # R and S
    stride: int = 1
    padding: int = 0
    groups: int = 1
    dtype: torch.dtype = torch.float32
    tf32: bool = False
    batch: int = 1
    channels_last: bool = True  # activations in torch.channels_last (the weight as it comes)
    shuffled: bool = False  # the channel shuffle fused into the output (shuffled_conv2d)
    arch: str = "sm_80"  # the emulated GPU (convkernels.simt.arch)

    @property
    def math_type(self):
        return "tf32" if self.tf32 else str(self.dtype).removeprefix("torch.")


CASES = [
    Case("3x3 float32", 32, 8, 3, padding=1),
    Case("3x3 tf32", 32, 8, 3, padding=1, tf32=True),
    Case("3x3 bfloat16", 32, 8, 3, padding=1, dtype=torch.bfloat16),
    Case("3x3 float16", 32, 8, 3, padding=1, dtype=torch.float16),
    Case("3x3 float64", 32, 8, 3, padding=1, dtype=torch.float64),
    Case("1x1 float32", 32, 8, 1),
    Case("3x3 stride 2 float32", 32, 16, 3, stride=2, padding=1),
    Case("3x3 groups 4 float32", 32, 8, 3, padding=1, groups=4),
    # ResNeXt-50 32x4d's first stage: groups of 4 half-type channels, two to a 16-byte chunk.
    Case("3x3 bfloat16, groups of 4 channels", 64, 8, 3, padding=1, groups=16, dtype=torch.bfloat16),
    # ShuffleNet's grouped 1x1 with the channel shuffle fused: each group's outputs scatter.
    Case("1x1 bfloat16, 240 channels in 3 groups, shuffled", 240, 8, 1, groups=3, dtype=torch.bfloat16, shuffled=True),
    Case("depthwise 3x3 float32", 32, 16, 3, padding=1, groups=32, channels_last=False),
    Case("depthwise 13x13 float32", 8, 16, 13, padding=6, groups=8, channels_last=False),
    # MobileNet's last stage: 7x7 planes, rows of 28 bytes that are not whole 16-byte vectors.
    Case("depthwise 3x3 float32 at 7x7", 32, 7, 3, padding=1, groups=32, channels_last=False),
    Case("depthwise 3x3 float32 channels_last", 32, 16, 3, padding=1, groups=32),
    Case("depthwise 3x3 bfloat16 channels_last", 32, 16, 3, padding=1, groups=32, dtype=torch.bfloat16),
    # MobileNet's downsampling layers: the input gradient in stride phases.
    Case("depthwise 3x3 stride 2 float32 channels_last", 32, 16, 3, stride=2, padding=1, groups=32),
    Case("depthwise 13x13 float32 channels_last", 8, 16, 13, padding=6, groups=8),
    # RepLKNet's 31x31: every pass on the NCHW kernels, relaid out (bfloat16 on tensor cores).
    Case("depthwise 31x31 float32 channels_last", 8, 32, 31, padding=15, groups=8),
    Case("depthwise 31x31 bfloat16 channels_last", 8, 32, 31, padding=15, groups=8, dtype=torch.bfloat16),
    # Shapes that fill the implicit GEMMs' 128-pixel tiles: 256 output pixels, 64 channels.
    Case("3x3 bfloat16, 64 channels at 16x16", 64, 16, 3, padding=1, dtype=torch.bfloat16),
    Case("3x3 float32, 64 channels at 16x16", 64, 16, 3, padding=1),
    Case("3x3 bfloat16, 64 channels at 16x16, sm_90a", 64, 16, 3, padding=1, dtype=torch.bfloat16, arch="sm_90a"),
    Case("3x3 tf32, 64 channels at 16x16, sm_90a", 64, 16, 3, padding=1, tf32=True, arch="sm_90a"),
    # A late layer's width: the TMA kernel's 128x256 tile.
    Case("3x3 bfloat16, 256 channels at 14x14, sm_90a", 256, 14, 3, padding=1, dtype=torch.bfloat16, arch="sm_90a"),
]
QUICK = "depthwise 3x3 float32"


def short_name(kernel):
    """general_fprop_kernel<float, Tf32, TileShape<128, 64, 8, 8, 4>, false> -> general_fprop<float, Tf32, 128x64, false>;
    channels_last_tma_igemm_kernel<c10::BFloat16, TmaTileShape<64, 8> > -> channels_last_tma_igemm<BFloat16, 128x64>;
    channels_last_igemm_kernel<c10::BFloat16, TileShape<128, 128, 64, 64, 3>, WarpMma<TileShape<...>, c10::BFloat16,
    false> > -> channels_last_igemm<BFloat16, 128x128, WarpMma>"""
    kernel = re.sub(r"(WarpMma|CudaCoreMma|WarpgroupMma)<.*> >", r"\1>", kernel)
    kernel = re.sub(r"TileShape<(\d+), (\d+), \d+, \d+, \d+>", r"\1x\2", kernel)
    kernel = re.sub(r"WarpgroupTileShape<(\d+), (\d+), \d+>", lambda m: f"{64 * int(m[1])}x{m[2]}", kernel)
    kernel = re.sub(r"TmaTileShape<(\d+), \d+> ?", r"128x\1", kernel)
    return kernel.replace("_kernel", "").replace("c10::", "")


def counted_passes(case):
    """{pass: {kernel name: KernelCounters}} of the case's forward and of each gradient on its own
    (dgrad: the input's only, wgrad: the weight's only), and the output's shape."""
    from convkernels import simt

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(case.batch, case.channels, case.size, case.size, generator=generator).to(case.dtype)
    w = torch.randn(case.channels, case.channels // case.groups, case.kernel, case.kernel,
                    generator=generator).to(case.dtype)
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = case.tf32
    conv = simt.shuffled_conv2d if case.shuffled else simt.conv2d

    def backward_of(needs_input, needs_weight):
        # Autograd asks the backward for every gradient whose tensor requires one, whatever
        # torch.autograd.grad is given: each pass gets its own forward with only its leaf.
        x_leaf = x.detach().requires_grad_(needs_input)
        w_leaf = w.detach().requires_grad_(needs_weight)
        y = conv(x_leaf, w_leaf, None, case.stride, case.padding, 1, case.groups)
        with simt.counters() as counted:
            y.backward(torch.ones_like(y))
        return counted

    try:
        with simt.arch(case.arch):
            with simt.counters() as fprop:
                y = conv(x, w, None, case.stride, case.padding, 1, case.groups)
            dgrad = backward_of(True, False)
            wgrad = backward_of(False, True)
    finally:
        torch.backends.cudnn.allow_tf32 = saved
    return {"fprop": fprop, "dgrad": dgrad, "wgrad": wgrad}, tuple(y.shape)


def floors(case, total, output_shape):
    """(model floor, ideal floor) in seconds of one pass whose kernels counted `total`. Every pass
    moves the same tensors once at least (fprop x, w -> y; dgrad dy, w -> dx; wgrad x, dy -> dw)
    and does the same useful math."""
    rate = FLOPS[case.math_type]
    traffic = (total.global_load_sectors + total.global_store_sectors + total.bulk_copy_sectors) * SECTOR_BYTES
    issued = (2 * total.ffma / FLOPS["float32"] + 2 * total.dfma / FLOPS["float64"] +
              2 * tensor_fma(total, case.math_type) / rate)
    model = max(traffic / BANDWIDTH, issued)

    n, k, p, q = output_shape
    x_elements = case.batch * case.channels * case.size * case.size
    w_elements = case.channels * case.channels // case.groups * case.kernel ** 2
    y_elements = n * k * p * q
    compulsory = (x_elements + w_elements + y_elements) * torch.empty((), dtype=case.dtype).element_size()
    useful = 2 * n * k * (case.channels // case.groups) * case.kernel ** 2 * p * q
    ideal = max(compulsory / BANDWIDTH, useful / rate)
    return model, ideal


def rows(cases):
    from convkernels.simt import KernelCounters

    for case in cases:
        passes, output_shape = counted_passes(case)
        for pass_name, kernels in passes.items():
            total = sum(kernels.values(), KernelCounters())
            model, ideal = floors(case, total, output_shape)
            fma = total.ffma + total.dfma + tensor_fma(total, case.math_type)
            shared_bytes = (total.shared_load_wavefronts + total.shared_store_wavefronts) * WAVEFRONT_BYTES
            yield {
                "case": case.name, "layout": "channels_last" if case.channels_last else "NCHW", "pass": pass_name,
                "kernels": ", ".join(short_name(k) for k in kernels),
                "sectors/req": f"{total.sectors_per_request:.1f}",
                "wavefronts/req": f"{total.wavefronts_per_request:.2f}",
                "bank conflicts": f"{total.shared_bank_conflicts}",
                "FMA/shared B": f"{fma / shared_bytes:.2f}" if shared_bytes else "-",
                "model floor (ns)": f"{model * 1e9:.1f}",
                "ideal floor (ns)": f"{ideal * 1e9:.1f}",
                "model/ideal": f"{model / ideal:.1f}",
            }


def main(quick=False):
    cases = [c for c in CASES if c.name == QUICK] if quick else CASES
    print("SIMT model (emulator counters, not a timing): H200 floors of the CUDA kernels on small "
          f"cases, batch 1; {BANDWIDTH / 1e9:.0f} GB/s, TFLOP/s "
          + ", ".join(f"{t} {f / 1e12:.0f}" for t, f in FLOPS.items()) + "\n")
    table = list(rows(cases))
    header = list(table[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in table:
        print("| " + " | ".join(row[h] for h in header) + " |")
