"""Random geometry (tests/conv_fuzz.py) against torch in float64: output, grad_input, grad_weight
and grad_bias, on the CPU kernels and, on smaller shapes, on the CUDA kernels under the SIMT
emulator (the tensor-core ones as an sm_80 and as an sm_90a GPU would run them, and with channels
that the sm_90a GPU's TMA kernel takes).

CI runs a fixed set of seeds; CONVKERNELS_FUZZ_CASES=<n> runs n of them (a fifth as many on the
emulator), for a long run. The data in each case is fresh random (see conftest.py to replay it).
"""
import os

import pytest
import torch

import convkernels
from conv_fuzz import LAYOUTS, fuzz_case
from conv_reference import assert_matches_torch, tf32_allowed

CASES = int(os.environ.get("CONVKERNELS_FUZZ_CASES", 300))
FUZZ = [fuzz_case(seed) for seed in range(CASES)]
SIMT_CASES = [fuzz_case(seed, max_kernel=6, max_channels_per_group=2, max_extra_size=3)
              for seed in range(CASES // 5)]
# Up to 20 channels a group, so that dense convolutions and groups of 16 and more take the
# channels_last implicit GEMM, in its tensor-core types.
TENSOR_CORE_CASES = [fuzz_case(seed, max_kernel=5, max_channels_per_group=20, max_extra_size=3)
                     for seed in range(1000, 1000 + CASES // 10)]

# Channels and outputs per group in multiples of 24 (whole 16-byte pieces of a half type, no two
# taps in a stage, groups not packed): half-type forward and input-gradient GEMMs of an sm_90a GPU
# then take the TMA kernel.
TMA_CASES = [fuzz_case(seed, max_kernel=4, max_channels_per_group=3, max_extra_size=4, channel_multiple=24)
             for seed in range(2000, 2000 + CASES // 6)]


@pytest.mark.parametrize("fuzz", FUZZ, ids=str)
def test_random_geometry_matches_torch(fuzz):
    assert_matches_torch(convkernels, fuzz.case, **fuzz.layout_arguments())


@pytest.mark.parametrize("fuzz", SIMT_CASES, ids=str)
def test_random_geometry_on_the_emulated_cuda_kernels(fuzz):
    simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built")
    assert_matches_torch(simt, fuzz.case, **fuzz.layout_arguments())


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("dtype,tf32", [(torch.bfloat16, False), (torch.float32, True)], ids=["bfloat16", "tf32"])
@pytest.mark.parametrize("fuzz", TENSOR_CORE_CASES, ids=str)
def test_random_geometry_on_the_emulated_tensor_cores(fuzz, dtype, tf32, arch):
    """On an sm_80 GPU (mma.sync) and on an sm_90a one (wgmma)."""
    simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built")
    with tf32_allowed(tf32), simt.arch(arch):
        assert_matches_torch(simt, fuzz.case, dtype=dtype, tf32=tf32, **fuzz.layout_arguments())


@pytest.mark.parametrize("fuzz", TMA_CASES, ids=str)
def test_random_geometry_on_the_emulated_tma_kernel(fuzz):
    simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built")
    with simt.arch("sm_90a"):
        assert_matches_torch(simt, fuzz.case, dtype=torch.bfloat16, **fuzz.layout_arguments())


def test_the_tma_seeds_reach_the_tma_kernel():
    """Most seeds with a non-empty batch run their forward on the TMA kernel (not all: a transposed
    one whose output holds only stride phases that no filter tap reaches is all bias, which the
    cp.async kernel fills)."""
    simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built")
    reached, cases = 0, [fuzz for fuzz in TMA_CASES if fuzz.case.input_shape[0] != 0]
    for fuzz in cases:
        x = torch.randn(fuzz.case.input_shape).to(torch.bfloat16)
        w = torch.randn(fuzz.case.weight_shape).to(torch.bfloat16)
        with simt.arch("sm_90a"), simt.counters() as launched:
            fuzz.case.ours(simt)(x, w, **fuzz.case.kwargs)
        reached += any("channels_last_tma_igemm_kernel" in name for name in launched)
    assert 3 * reached >= 2 * len(cases), f"{reached} of {len(cases)}"


def test_the_seeds_cover_the_promised_geometry():
    cases = [fuzz.case for fuzz in FUZZ]
    kernels = [c.weight_shape[2:] for c in cases]
    assert any(11 in k for k in kernels)
    assert any(k[i] > c.input_shape[-2 + i] for c, k in zip(cases, kernels) for i in range(2)), \
        "a filter larger than the input"
    assert {3} <= {v for c in cases for v in c.kwargs["stride"] + c.kwargs["dilation"]}
    assert any(not isinstance(c.kwargs["padding"], str)
               and c.kwargs["padding"][i] > c.kwargs["dilation"][i] * (k[i] - 1)
               for c, k in zip(cases, kernels) for i in range(2)), "padding past the filter's reach"
    assert {"same", "valid"} <= {c.kwargs["padding"] for c in cases if isinstance(c.kwargs["padding"], str)}
    assert any(any(c.kwargs.get("output_padding", (0, 0))) for c in cases)
    convs = [c for c in cases if not c.transposed]
    assert any(c.weight_shape[1] == 1 and c.weight_shape[0] > c.kwargs["groups"] > 1 for c in convs), \
        "depthwise with a channel multiplier"
    assert any(c.weight_shape[1] > 1 and c.kwargs["groups"] > 1 for c in convs), "grouped"
    assert {0, 1, 2, 3} <= {c.input_shape[0] for c in cases if len(c.input_shape) == 4}
    assert any(len(c.input_shape) == 3 for c in cases), "unbatched"
    assert {fuzz.layout for fuzz in FUZZ} == set(LAYOUTS)
