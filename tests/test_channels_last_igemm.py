"""The channels_last tensor-core implicit GEMM (csrc/cuda/nhwc_igemm), run by the SIMT emulator:
which passes take it, that it matches torch in float64 at its edges (channel counts that are not
a multiple of 16 bytes, several tiles, groups, the fused shuffle, misaligned and NCHW operands),
and what its counters show on an aligned shape: 16-byte loads and stores at one request per
16 sectors and no shared-memory bank conflict."""
import pytest
import torch

from conv_reference import ConvCase, assert_matches_torch, tf32_allowed, tolerance

simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built (no CUDA headers)")

KERNEL = "channels_last_igemm_kernel"
TENSOR_CORE_TYPES = [(torch.bfloat16, False), (torch.float16, False), (torch.float32, True)]
TYPE_IDS = ["bfloat16", "float16", "tf32"]


def kernels_of(fn):
    with simt.counters() as launched:
        fn()
    return set(launched)


def passes_of(case, dtype, tf32):
    """{pass: kernel names} of the case's forward and of each gradient on its own."""
    x = torch.randn(case.input_shape).to(dtype).requires_grad_()
    w = torch.randn(case.weight_shape).to(dtype).requires_grad_()
    with tf32_allowed(tf32):
        fprop = kernels_of(lambda: case.ours(simt)(x, w, **case.kwargs))
        y = case.ours(simt)(x, w, **case.kwargs)
        dgrad = kernels_of(lambda: torch.autograd.grad(y, x, torch.ones_like(y), retain_graph=True))
        wgrad = kernels_of(lambda: torch.autograd.grad(y, w, torch.ones_like(y)))
    return {"fprop": fprop, "dgrad": dgrad, "wgrad": wgrad}


def takes_it(kernels):
    return any(KERNEL in k for k in kernels)


@pytest.mark.parametrize("dtype,tf32", TENSOR_CORE_TYPES, ids=TYPE_IDS)
def test_fprop_and_stride_1_dgrad_take_the_tensor_core_gemm(dtype, tf32):
    passes = passes_of(ConvCase(False, (1, 16, 6, 6), (24, 16, 3, 3), kwargs=dict(padding=1)), dtype, tf32)
    assert takes_it(passes["fprop"]) and takes_it(passes["dgrad"])
    strided = passes_of(ConvCase(False, (1, 16, 6, 6), (24, 16, 3, 3), kwargs=dict(stride=2)), dtype, tf32)
    assert takes_it(strided["fprop"]) and not takes_it(strided["dgrad"])
    # conv_transpose2d's forward is a dgrad, its input gradient an fprop.
    transposed = passes_of(ConvCase(True, (1, 16, 5, 5), (16, 8, 3, 3)), dtype, tf32)
    assert takes_it(transposed["fprop"]) and takes_it(transposed["dgrad"])


@pytest.mark.parametrize("dtype,tf32", [(torch.float32, False), (torch.float64, False)], ids=["float32", "float64"])
def test_ieee_types_and_depthwise_keep_their_kernels(dtype, tf32):
    dense = passes_of(ConvCase(False, (1, 16, 6, 6), (24, 16, 3, 3), kwargs=dict(padding=1)), dtype, tf32)
    assert not any(takes_it(k) for k in dense.values())
    depthwise = passes_of(ConvCase(False, (1, 16, 6, 6), (16, 1, 3, 3), kwargs=dict(padding=1, groups=16)),
                          torch.bfloat16, False)
    assert not any(takes_it(k) for k in depthwise.values())


# Each case states the edge it reaches.
EDGES = [
    # 3 input channels, zero-padded to 16 bytes; stride 2; the 128x64 tile with a partial M tile.
    ConvCase(False, (1, 3, 13, 12), (16, 3, 3, 3), kwargs=dict(stride=2, padding=1)),
    # 136 output channels: the 128x128 tile, two n tiles, the second one 8 channels wide.
    ConvCase(False, (1, 16, 5, 7), (136, 16, 1, 1)),
    # 40 channels: two k-steps per tap, the second masked past channel 40.
    ConvCase(False, (2, 40, 7, 6), (24, 40, 3, 3), kwargs=dict(padding=2, dilation=2)),
    # Groups of 6 input (padded) and 10 output channels: scalar stores; bias off.
    ConvCase(False, (2, 12, 8, 9), (20, 6, 3, 2), bias=False, kwargs=dict(groups=2, padding=(1, 0))),
    # The fused channel shuffle scatters each group's channels.
    ConvCase(False, (1, 16, 6, 6), (32, 8, 3, 3), shuffled=True, kwargs=dict(groups=2, padding=1)),
    # More than 128 output pixels per image and a filter reaching past the input (taps in padding).
    ConvCase(False, (1, 8, 12, 13), (8, 8, 5, 5), kwargs=dict(padding=4)),
    # conv_transpose2d at stride 1 with padding: dgrad on the tensor cores with padding (R-1)-pad.
    ConvCase(True, (2, 16, 6, 7), (16, 24, 3, 3), kwargs=dict(padding=1)),
]


@pytest.mark.parametrize("layout", [None, torch.channels_last], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype,tf32", TENSOR_CORE_TYPES, ids=TYPE_IDS)
@pytest.mark.parametrize("case", EDGES, ids=str)
def test_edges_match_float64_reference(case, dtype, tf32, layout):
    with tf32_allowed(tf32):
        assert_matches_torch(simt, case, dtype=dtype, memory_format=layout, tf32=tf32)


@pytest.mark.parametrize("case", EDGES[:3], ids=str)
def test_a_weight_in_the_other_layout_and_a_permuted_schedule(case):
    with simt.schedule("random:5"):
        assert_matches_torch(simt, case, dtype=torch.bfloat16, memory_format=torch.channels_last,
                             weight_memory_format=torch.contiguous_format)
        assert_matches_torch(simt, case, dtype=torch.bfloat16, weight_memory_format=torch.channels_last)


def test_operands_that_do_not_start_on_16_bytes():
    """A view one element into its storage: cp.async needs 16-byte aligned sources, so the pass
    copies it first."""
    storage = torch.randn(1 + 2 * 16 * 5 * 6).to(torch.bfloat16)
    x = storage[1:].view(2, 5, 6, 16).permute(0, 3, 1, 2)  # channels_last, data_ptr % 16 == 2
    assert x.is_contiguous(memory_format=torch.channels_last) and x.data_ptr() % 16 != 0
    w = torch.randn(24, 16, 3, 3).to(torch.bfloat16)
    assert takes_it(kernels_of(lambda: simt.conv2d(x, w, padding=1)))
    got = simt.conv2d(x, w, padding=1).double()
    expected = torch.nn.functional.conv2d(x.double(), w.double(), padding=1)
    bound = torch.nn.functional.conv2d(x.double().abs(), w.double().abs(), padding=1)
    assert ((got - expected).abs() <= tolerance(bound, torch.bfloat16)).all()


def test_aligned_shape_moves_whole_sectors_without_bank_conflicts():
    """1x1, 64 -> 128 channels, 16x16 pixels, bfloat16: every cp.async lane copies 16 bytes, 8 rows of
    64 contiguous bytes per warp request (16 sectors), the epilogue stores 16 bytes a lane along
    256-byte rows (16 sectors); ldmatrix and the staged epilogue meet no bank conflict."""
    x = torch.randn(1, 64, 16, 16).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(128, 64, 1, 1).to(torch.bfloat16)
    with simt.counters() as launched:
        simt.conv2d(x, w)
    (name, counters), = launched.items()
    assert KERNEL in name
    assert counters.sectors_per_request == 16
    assert counters.shared_bank_conflicts == 0
    assert counters.mma_16816 == (256 // 16) * (128 // 8) * (64 // 16)  # every MMA of the GEMM, once
