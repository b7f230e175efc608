"""The machine code of every CUDA kernel keeps what its design promises. cuobjdump (pip's
nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm, in the dev requirements) reads the sm_90 SASS of
the built extension; each kernel is checked against the promises below, so a kernel that loses its
tensor-core instructions or starts using local memory fails CI on a machine without a GPU.

The generation-1 kernels promise m16n8k8 tensor-core GEMMs; the channels_last implicit GEMM
(csrc/cuda/nhwc_igemm) promises cp.async (LDGSTS) and ldmatrix (LDSM) in its main loop, HMMA.16816
for half types (FFMA/DFMA fed by 128-bit shared loads on CUDA cores), 128-bit stores in its
epilogue, and a main loop free of divisions; its weight gradient (channels_last_wgrad_kernel) the
same main loop with ldmatrix.trans (LDSM.16.MT88) for half types, HMMA.1688 TF32 for float32 in
TF32, FFMA/DFMA for IEEE float32 and float64. On Hopper (sm_90a) its tensor-core kernels for
fprop and dgrad, and for the half-type weight gradient (WarpgroupMma), promise HGMMA fed from
shared memory instead: no ldmatrix, no mma.sync, cp.async still, and the proxy fence
(FENCE.VIEW.ASYNC.S) that makes the copies' generic-proxy writes visible to wgmma's async-proxy
reads (the emulator does not model proxies; this gate is what checks it). Where they copy by TMA
(channels_last_tma_igemm_kernel) they promise the tensor copies (UTMALDG), the mbarrier waits and
arrivals (SYNCS), HGMMA, setmaxnreg (USETMAXREG) and no cp.async; in TF32 also the 16-byte shared
loads and stores that round each landed stage.
The NCHW depthwise kernels promise 16-byte loads (LDG.E.128) for the rows they stage where rows
are whole aligned vectors, and FFMA (DFMA for float64).
The channels_last depthwise kernels (csrc/cuda/depthwise_nhwc) promise that at their full
channel-vector width every global load and store is 16 bytes (LDG.E.128, STG.E.128), the staged
kernel's shared accesses too (LDS.128, STS.128), and FFMA (DFMA for float64).
"""
import collections
import functools
import os
import pathlib
import re
import shutil
import subprocess
import sysconfig

import pytest

import convkernels

NHWC = "convkernels::cuda::nhwc_igemm::"
# What a wgmma kernel fed from cp.async stages has (its HGMMA shape apart): the warpgroup arrive
# before its wgmmas, the copies, and the proxy fence between them; and, in its main loop, the wait.
WGMMA_FROM_SHARED_MEMORY = [r"WARPGROUP\.ARRIVE", r"LDGSTS", r"FENCE\.VIEW\.ASYNC\.S"]
WGMMA_MAIN_LOOP = ("LDGSTS", "WARPGROUP.ARRIVE", "HGMMA", "WARPGROUP.DEPBAR")
# kernels: (kernel-name pattern, instructions each must contain, instructions none may contain);
# instruction patterns match from the opcode's start ("HMMA.1688.F32$": float16 inputs exactly).
PROMISES = {
    "no local memory": (r"", [], [r"LDL\b", r"STL\b"]),
    "float16 GEMMs on tensor cores": (r"general_\w+_kernel<c10::Half, c10::Half", [r"HMMA\.1688\.F32$"], []),
    "bfloat16 GEMMs on tensor cores": (r"general_\w+_kernel<c10::BFloat16, c10::BFloat16",
                                       [r"HMMA\.1688\.F32\.BF16"], []),
    "TF32 GEMMs on tensor cores": (r"general_\w+_kernel<float, convkernels::cuda::Tf32",
                                   [r"HMMA\.1688\.F32\.TF32"], []),
    "channels_last GEMMs stage with cp.async and store 128 bits": (
        r"channels_last_igemm_kernel<.*, 16>\(", [r"LDGSTS\.E\.BYPASS.*128", r"STG\.E\.128"], []),
    # Channels padded to 8 bytes (a first layer's): 8-byte pieces, a filter tap each.
    "channels_last few-channel GEMMs stage 8-byte pieces with cp.async": (
        r"channels_last_igemm_kernel<.*, 8>\(", [r"LDGSTS\.E\.64", r"STG\.E\.128"], [r"LDGSTS\.E\.BYPASS"]),
    "channels_last tensor-core GEMMs load fragments with ldmatrix": (
        r"channels_last_igemm_kernel.*WarpMma", [r"LDSM\.16\.M88\.4"], []),
    # Unpacked (kPacked, the second last argument, false): m16n8k16 only. Packed groups multiply
    # a k-step of one group's chunk alone as an m16n8k8.
    "channels_last float16 GEMMs in m16n8k16": (
        rf"channels_last_igemm_kernel<c10::Half, {NHWC}TileShape.*, false, \d+>\(", [r"HMMA\.16816\.F32$"],
        [r"HMMA\.1688"]),
    "channels_last bfloat16 GEMMs in m16n8k16": (
        rf"channels_last_igemm_kernel<c10::BFloat16, {NHWC}TileShape.*, false, \d+>\(",
        [r"HMMA\.16816\.F32\.BF16"], [r"HMMA\.1688"]),
    "channels_last packed float16 GEMMs in m16n8k16 and one-chunk m16n8k8": (
        rf"channels_last_igemm_kernel<c10::Half, {NHWC}TileShape.*, true, \d+>\(",
        [r"HMMA\.16816\.F32$", r"HMMA\.1688\.F32$"], []),
    "channels_last packed bfloat16 GEMMs in m16n8k16 and one-chunk m16n8k8": (
        rf"channels_last_igemm_kernel<c10::BFloat16, {NHWC}TileShape.*, true, \d+>\(",
        [r"HMMA\.16816\.F32\.BF16", r"HMMA\.1688\.F32\.BF16"], []),
    "channels_last wgmma GEMMs read both operands from shared memory": (
        r"channels_last_igemm_kernel<.*WarpgroupMma", [r"HGMMA\.64x\d+x", *WGMMA_FROM_SHARED_MEMORY],
        [r"HMMA", r"LDSM"]),
    "channels_last float16 wgmma GEMMs in k16": (r"channels_last_igemm_kernel<c10::Half, .*WarpgroupMma",
                                                 [r"HGMMA\.64x\d+x16\.F32$"], []),
    "channels_last bfloat16 wgmma GEMMs in k16": (r"channels_last_igemm_kernel<c10::BFloat16, .*WarpgroupMma",
                                                  [r"HGMMA\.64x\d+x16\.F32\.BF16"], []),
    "channels_last float32 wgmma GEMMs in TF32": (r"channels_last_igemm_kernel<float, .*WarpgroupMma",
                                                  [r"HGMMA\.64x\d+x8\.F32\.TF32"], []),
    # Warp-specialised: one thread copies both operands by TMA onto mbarriers (no cp.async, no
    # address arithmetic per lane), warpgroups wait on them and multiply with wgmma; the producer
    # warpgroup gives registers to the consumers (setmaxnreg).
    "channels_last TMA GEMMs copy by the tensor memory accelerator and multiply with wgmma": (
        r"channels_last_tma_igemm_kernel<",
        [r"UTMALDG\.5D", r"UTMALDG\.3D", r"SYNCS\.PHASECHK", r"SYNCS\.ARRIVE", r"HGMMA\.64x\d+x(16|8)\.F32",
         r"WARPGROUP\.ARRIVE", r"STG\.E\.128", r"USETMAXREG\.DEALLOC", r"USETMAXREG\.TRY_ALLOC"],
        [r"LDGSTS", r"HMMA", r"LDSM"]),
    "channels_last float16 TMA GEMMs in k16": (r"channels_last_tma_igemm_kernel<c10::Half,",
                                               [r"HGMMA\.64x\d+x16\.F32$"], []),
    "channels_last bfloat16 TMA GEMMs in k16": (r"channels_last_tma_igemm_kernel<c10::BFloat16,",
                                                [r"HGMMA\.64x\d+x16\.F32\.BF16"], []),
    # In TF32 the consumers round each landed stage in place (16-byte shared loads and stores).
    "channels_last float32 TMA GEMMs in TF32": (r"channels_last_tma_igemm_kernel<float,",
                                                [r"HGMMA\.64x\d+x8\.F32\.TF32", r"LDS\.128", r"STS\.128"], []),
    "channels_last float32 GEMMs in TF32": (r"channels_last_igemm_kernel<float, .*WarpMma",
                                            [r"HMMA\.1688\.F32\.TF32"], []),
    "channels_last packed TF32 GEMMs multiply one-chunk k-steps in m16n8k4": (
        r"channels_last_igemm_kernel<float, .*WarpMma.*, true, \d+>\(", [r"HMMA\.1684\.F32\.TF32"], []),
    "channels_last IEEE float32 GEMMs in FFMA with 128-bit shared loads": (
        r"channels_last_igemm_kernel<float, .*CudaCoreMma", [r"FFMA", r"LDS\.128"], [r"HMMA"]),
    "channels_last float64 GEMMs in DFMA with 128-bit shared loads": (
        r"channels_last_igemm_kernel<double, .*CudaCoreMma", [r"DFMA", r"LDS\.128"], [r"HMMA"]),
    "channels_last wgrad stages with cp.async": (r"channels_last_wgrad_kernel<", [r"LDGSTS\.E\.BYPASS.*128"], []),
    "channels_last half-type wgrad loads fragments with ldmatrix.trans": (
        rf"channels_last_wgrad_kernel<c10::(Half|BFloat16), {NHWC}WgradTile", [r"LDSM\.16\.MT88\.4"], []),
    "channels_last float16 wgrad in m16n8k16": (rf"channels_last_wgrad_kernel<c10::Half, {NHWC}WgradTile",
                                                [r"HMMA\.16816\.F32$"], [r"HMMA\.1688"]),
    "channels_last bfloat16 wgrad in m16n8k16": (rf"channels_last_wgrad_kernel<c10::BFloat16, {NHWC}WgradTile",
                                                 [r"HMMA\.16816\.F32\.BF16"], [r"HMMA\.1688"]),
    "channels_last wgmma wgrad reads both operands from shared memory": (
        r"channels_last_wgrad_kernel<.*WarpgroupMma", [r"HGMMA\.64x(64|128)x16\.F32", *WGMMA_FROM_SHARED_MEMORY],
        [r"HMMA", r"LDSM"]),
    "channels_last float32 wgrad in TF32": (r"channels_last_wgrad_kernel<float, .*TransposedWarpMma",
                                            [r"HMMA\.1688\.F32\.TF32"], []),
    "channels_last IEEE float32 wgrad in FFMA": (r"channels_last_wgrad_kernel<float, .*TransposedCudaCoreMma",
                                                 [r"FFMA"], [r"HMMA"]),
    "channels_last float64 wgrad in DFMA": (r"channels_last_wgrad_kernel<double, .*TransposedCudaCoreMma",
                                            [r"DFMA"], [r"HMMA"]),
    "IEEE float32 GEMMs in FFMA": (r"general_\w+_kernel<float, float", [r"FFMA"], [r"HMMA"]),
    "float64 GEMMs in DFMA": (r"general_\w+_kernel<double, double", [r"DFMA"], [r"HMMA"]),
    "depthwise in FFMA": (r"depthwise_(fprop|dgrad|wgrad)_kernel<(float|c10::Half|c10::BFloat16)(, \d)?>",
                          [r"FFMA"], [r"HMMA"]),
    "float64 depthwise in DFMA": (r"depthwise_(fprop|dgrad|wgrad)_kernel<double(, \d)?>", [r"DFMA"], []),
    "NCHW depthwise stages aligned rows in 16-byte loads": (r"depthwise_(fprop|dgrad|wgrad|mma)_kernel<",
                                                           [r"LDG\.E\.128"], []),
    # Toeplitz filter fragments from 32-bit shared words, patch fragments by ldmatrix.x2 (FFMA only
    # in the exact path of blocks that stage an Inf or a NaN).
    "large float16 depthwise filters in m16n8k16": (r"depthwise_mma_kernel<c10::Half,",
                                                     [r"HMMA\.16816\.F32$", r"LDSM\.16\.M88\.2"], []),
    "large bfloat16 depthwise filters in m16n8k16": (r"depthwise_mma_kernel<c10::BFloat16,",
                                                      [r"HMMA\.16816\.F32\.BF16", r"LDSM\.16\.M88\.2"], []),
    "half-type weight gradients store dw in 16-byte vectors": (r"channels_last_wgrad_kernel<c10::(Half|BFloat16),",
                                                               [r"STG\.E\.128"], []),
    "large float16 depthwise weight gradients in m16n8k16": (r"depthwise_mma_wgrad_kernel<c10::Half>",
                                                             [r"HMMA\.16816\.F32$"], []),
    "large bfloat16 depthwise weight gradients in m16n8k16": (r"depthwise_mma_wgrad_kernel<c10::BFloat16>",
                                                              [r"HMMA\.16816\.F32\.BF16"], []),
    # Full-width channel vectors are 16 bytes: 8 half, 4 float, 2 double channels.
    "channels_last depthwise moves 16 bytes a lane in every global access": (
        r"depthwise_nhwc_(fprop|dgrad|wgrad)_kernel<[\w:]+, [248]>|depthwise_nhwc_staged_kernel<",
        [r"LDG\.E\.128", r"STG\.E\.128"], [r"LDG\.E(?!\.128)", r"STG\.E(?!\.128)"]),
    "channels_last staged depthwise moves 16 bytes a lane in shared memory": (
        r"depthwise_nhwc_staged_kernel<", [r"LDS\.128", r"STS\.128"], [r"LDS(?!\.128)", r"STS(?!\.128)"]),
    "channels_last depthwise in FFMA": (
        r"depthwise_nhwc_((fprop|dgrad|wgrad)_kernel<(float|c10::Half|c10::BFloat16),|staged_kernel<(float|c10::Half|c10::BFloat16)>)",
        [r"FFMA"], [r"HMMA"]),
    "channels_last float64 depthwise in DFMA": (
        r"depthwise_nhwc_((fprop|dgrad|wgrad)_kernel<double,|staged_kernel<double>)", [r"DFMA"], []),
}
# The kernel families the extension must contain: a gate that matches no kernel checks nothing.
FAMILIES = ["channels_last_igemm_kernel", "channels_last_tma_igemm_kernel", "channels_last_wgrad_kernel",
            "channels_last_wgrad_reduce_kernel", "general_fprop_kernel", "general_dgrad_kernel",
            "general_wgrad_kernel", "reduce_splits_kernel",
            "depthwise_fprop_kernel", "depthwise_dgrad_kernel", "depthwise_wgrad_kernel", "depthwise_mma_kernel",
            "depthwise_mma_wgrad_kernel", "depthwise_nhwc_fprop_kernel", "depthwise_nhwc_dgrad_kernel", "depthwise_nhwc_staged_kernel",
            "depthwise_nhwc_wgrad_kernel", "depthwise_nhwc_wgrad_reduce_kernel"]

LIBRARY = pathlib.Path(convkernels._C.__file__)


def _has_device_code(path):
    sections = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True).stdout
    return ".nv_fatbin" in sections


def _tools_path():
    """PATH with pip's CUDA binaries first (cuobjdump runs nvdisasm, which it finds on PATH)."""
    pip_bin = pathlib.Path(sysconfig.get_paths()["purelib"]) / "nvidia" / "cu13" / "bin"
    return f"{pip_bin}:{os.environ.get('PATH', '')}"


Instruction = collections.namedtuple("Instruction", "address opcode target")


def disassemble(binary):
    """{demangled kernel name: [Instruction(address, opcode with modifiers, branch target or
    None), ...]} of the sm_90 code in ``binary``."""
    path = _tools_path()
    cuobjdump = shutil.which("cuobjdump", path=path)
    assert cuobjdump and shutil.which("nvdisasm", path=path), \
        "cuobjdump and nvdisasm not found: pip install -r requirements-dev.txt"
    dump = subprocess.run([cuobjdump, "-sass", "-arch", "sm_90", str(binary)], capture_output=True,
                          text=True, env={**os.environ, "PATH": path}, check=True).stdout
    kernels, name = {}, None
    for line in dump.splitlines():
        if (m := re.search(r"Function : (\S+)", line)):
            name = m.group(1)
            kernels[name] = []
        elif name and (m := re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Za-z0-9_.]*)(.*)", line)):
            target = re.match(r"\s+(0x[0-9a-f]+)", m.group(3)) if m.group(2).startswith("BRA") else None
            kernels[name].append(Instruction(int(m.group(1), 16), m.group(2),
                                             int(target.group(1), 16) if target else None))
    demangled = subprocess.run(["c++filt"], input="\n".join(kernels), capture_output=True, text=True,
                               check=True).stdout.splitlines()
    return dict(zip(demangled, kernels.values()))


MATH = ("HMMA", "HGMMA", "FFMA", "DFMA")


def main_loop(instructions):
    """The opcodes of the loop body (from a backward branch's target to the branch) that holds the
    most math instructions (HMMA, HGMMA, FFMA, DFMA); of loops that hold as many, the outermost (the
    k-step loop around an inner loop over a stage's chunks)."""
    loops = [[i.opcode for i in instructions if branch.target <= i.address <= branch.address]
             for branch in instructions if branch.target is not None and branch.target < branch.address]
    return max(loops, key=lambda body: (sum(op.startswith(MATH) for op in body), len(body)), default=[])


@functools.cache
def sass():
    return disassemble(LIBRARY)


def broken_promises(kernels, promise):
    """'kernel: no X' / 'kernel: has Y' for every kernel of ``kernels`` that ``promise`` covers."""
    pattern, required, forbidden = PROMISES[promise]
    broken = []
    for name, instructions in kernels.items():
        ops = [i.opcode for i in instructions]
        if re.search(pattern, name):
            broken += [f"{name}: no {r}" for r in required if not any(re.match(r, op) for op in ops)]
            broken += [f"{name}: has {f}" for f in forbidden if any(re.match(f, op) for op in ops)]
    return broken


pytestmark = pytest.mark.skipif(not _has_device_code(LIBRARY),
                                reason="the extension was built without CUDA (CONVKERNELS_CUDA=0 or no nvcc)")


def test_every_kernel_family_is_in_the_sm90_code():
    names = " ".join(sass())
    assert [f for f in FAMILIES if f not in names] == []


@pytest.mark.parametrize("promise", PROMISES)
def test_kernels_keep_their_promised_instructions(promise):
    pattern = PROMISES[promise][0]
    assert any(re.search(pattern, name) for name in sass()), f"no kernel matches {pattern!r}"
    assert broken_promises(sass(), promise) == []


# Integer division and modulo are a CALL (64-bit) or an I2F/MUFU.RCP sequence (32-bit) in SASS.
DIVISION = [r"CALL", r"MUFU\.RCP", r"I2F"]


def test_channels_last_main_loops_copy_load_and_multiply_without_dividing():
    loops = {k: main_loop(i) for k, i in sass().items() if "channels_last_igemm_kernel" in k}
    assert loops
    for kernel, body in loops.items():
        on_cuda_cores = ("LDGSTS", "LDS.128", "FFMA" if "<float" in kernel else "DFMA")
        needs = ("LDGSTS", "LDSM", "HMMA") if "WarpMma" in kernel else on_cuda_cores
        if "WarpgroupMma" in kernel:
            needs = WGMMA_MAIN_LOOP
        for needed in needs:
            assert any(op.startswith(needed) for op in body), f"{kernel}: no {needed} in the main loop"
        assert [op for op in body if any(re.match(d, op) for d in DIVISION)] == [], kernel


def innermost_loop_with(instructions, *opcodes):
    """The opcodes of the smallest loop body that holds instructions starting with each of ``opcodes``."""
    loops = [[i.opcode for i in instructions if branch.target <= i.address <= branch.address]
             for branch in instructions if branch.target is not None and branch.target < branch.address]
    holding = [body for body in loops if all(any(op.startswith(o) for op in body) for o in opcodes)]
    return min(holding, key=len, default=[])


def test_tma_gemm_loops_wait_copy_and_multiply_without_dividing():
    """The producer's loop waits for a free stage and issues both tensor copies; the consumers'
    waits for a full stage, multiplies and releases one; neither divides (a tile's coordinates are
    computed once per tile, outside them)."""
    kernels = {k: i for k, i in sass().items() if "channels_last_tma_igemm_kernel" in k}
    assert len(kernels) == 8  # float16, bfloat16: 256, 128 and 64 columns; float32 (TF32): 128 and 64
    for kernel, instructions in kernels.items():
        producer = innermost_loop_with(instructions, "UTMALDG.5D", "UTMALDG.3D")
        consumer = innermost_loop_with(instructions, "HGMMA")
        assert any(op.startswith("SYNCS.PHASECHK") for op in producer), f"{kernel}: the copies wait for nothing"
        for needed in ("SYNCS.PHASECHK", "WARPGROUP.ARRIVE", "HGMMA", "WARPGROUP.DEPBAR", "SYNCS.ARRIVE"):
            assert any(op.startswith(needed) for op in consumer), f"{kernel}: no {needed} in the multiply loop"
        for body in (producer, consumer):
            assert [op for op in body if any(re.match(d, op) for d in DIVISION)] == [], kernel


def test_channels_last_wgrad_main_loops_copy_load_and_multiply_without_dividing():
    """Pixels advance by additions (wgrad_iterators.cuh): no division between the copies and the MMAs."""
    loops = {k: main_loop(i) for k, i in sass().items() if "channels_last_wgrad_kernel" in k}
    # float16, bfloat16, TF32, 3xTF32, IEEE float32, float64; each unpacked and packed; float16,
    # bfloat16, TF32 and IEEE float32 on tiles of 128 rows, columns or both too, and packed on 128
    # columns; float16 and bfloat16 on wgmma, 64 and 128 columns on one and two warpgroups.
    assert len(loops) == 36
    for kernel, body in loops.items():
        if "WarpgroupMma" in kernel:
            needed = WGMMA_MAIN_LOOP
        elif "TransposedCudaCoreMma" in kernel:
            needed = ("LDGSTS", "FFMA" if "<float" in kernel else "DFMA")
        else:
            needed = ("LDGSTS", "HMMA") + (("LDSM",) if "<float" not in kernel else ())
        for op in needed:
            assert any(o.startswith(op) for o in body), f"{kernel}: no {op} in the main loop"
        assert [op for op in body if any(re.match(d, op) for d in DIVISION)] == [], kernel


def tensor_work(op):
    """m16n8k8-equivalents of tensor-core work of one warp's instruction: an m16n8k16 is two; an
    HGMMA.64xNxK, issued by the 4 warps of a warpgroup, 64 N K / (4 * 16 * 8 * 8) each."""
    if (m := re.match(r"HGMMA\.64x(\d+)x(\d+)", op)):
        return int(m.group(1)) * int(m.group(2)) / 64
    return (2 if op.startswith("HMMA.16816") else 1) if op.startswith("HMMA") else 0


def tensor_work_per_instruction(instructions):
    """m16n8k8-equivalents of tensor-core work per instruction of a warp in the main loop."""
    body = main_loop(instructions)
    return sum(tensor_work(op) for op in body) / len(body)


def test_channels_last_main_loop_does_8x_the_tensor_work_per_instruction_of_generation_1():
    """Against the generation-1 dense GEMM (128x64 tiles, gathered im2col) that its tile shapes
    replace. (The kernels that pack small groups, kPacked `true`, skip the MMAs across groups by
    design; those that copy a first layer's channels in 8-byte pieces issue twice the copies of
    16-byte chunks for half their MMAs, which test_channels_last_igemm.py counts.)"""
    kernels = sass()
    first = [tensor_work_per_instruction(i) for k, i in kernels.items()
             if re.search(r"general_fprop_kernel<c10::BFloat16, c10::BFloat16, .*TileShape<128, 64, .*false>", k)]
    second = [tensor_work_per_instruction(i) for k, i in kernels.items()
              if re.search(r"channels_last_igemm_kernel<c10::BFloat16, .*, false, 16>\(", k)]
    assert first and second
    assert min(second) >= 8 * max(first), (first, second)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc")
def test_the_gate_fails_a_kernel_that_uses_local_memory(tmp_path):
    """A planted spill: an array written and read at indices known only at run time lives in local
    memory (LDL/STL)."""
    source = tmp_path / "spills.cu"
    source.write_text("__global__ void spills(float* out, int i) {\n"
                      "  float a[64];\n"
                      "  for (int k = 0; k < 64; ++k) a[(k * i) & 63] = out[k];\n"
                      "  out[0] = a[i & 63];\n"
                      "}\n")
    subprocess.run(["nvcc", "-arch=sm_90", "-cubin", "-o", str(tmp_path / "spills.cubin"), str(source)], check=True)
    broken = broken_promises(disassemble(tmp_path / "spills.cubin"), "no local memory")
    assert broken and all(b.startswith("spills(float*, int): has") for b in broken)
