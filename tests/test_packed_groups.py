"""Small groups on the channels_last implicit GEMM (csrc/cuda/nhwc_igemm/packed_groups.cuh): every
pass packs several convolution groups of fewer than 16 channels (ResNeXt's 4-16) into one GEMM
group. fprop and dgrad multiply block-diagonal filters, and their warps only the diagonal blocks;
the weight gradient multiplies only the m16n8 tiles that hold a (output, channel) pair of one group.
Run by the SIMT emulator: they match torch in float64, an infinite input or weight stays in its own
group (as in torch, where groups never meet), and the MMA count is that of the diagonal alone."""
import math

import pytest
import torch

from conv_reference import GEMM_TYPE_IDS, GEMM_TYPES, ConvCase, assert_matches_torch, tf32_allowed
from test_channels_last_igemm import instantiation

simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built (no CUDA headers)")

KERNEL = "channels_last_igemm_kernel"
WGRAD_KERNEL = "channels_last_wgrad_kernel"
TYPES, TYPE_IDS = GEMM_TYPES, GEMM_TYPE_IDS


def is_packed(name, kernel=KERNEL):
    """Whether `name` is `kernel` instantiated for packed groups."""
    if kernel == KERNEL:
        return kernel in name and instantiation(name)[1]
    return kernel in name and name.endswith(", true>")  # the weight gradient's last argument


def packed_kernels(fn, kernel=KERNEL):
    """Names of the launched kernels that are the packed `kernel`."""
    with simt.counters() as launched:
        fn()
    return [k for k in launched if is_packed(k, kernel)]


# Each case states the packing it reaches.
CASES = [
    # ResNeXt's first stage in miniature: 8 groups of 4 -> 4, one GEMM group of 8 padded to 8 columns.
    ConvCase(False, (2, 32, 6, 6), (32, 4, 3, 3), kwargs=dict(groups=8, padding=1)),
    # 3 groups (a prime: all three in one GEMM group), 4 -> 6 channels, stride 2 (dgrad by phases).
    ConvCase(False, (1, 12, 7, 6), (18, 4, 3, 3), kwargs=dict(groups=3, padding=1, stride=2)),
    # Groups of 8 -> 8: one 16-byte chunk of bfloat16 each, a k16 step straddling two groups.
    ConvCase(False, (1, 64, 5, 5), (64, 8, 3, 3), bias=False, kwargs=dict(groups=8, padding=1)),
    # Groups of 16 -> 16 (the boundary of packing) with dilation, 2 GEMM groups of 4.
    ConvCase(False, (1, 128, 5, 6), (128, 16, 3, 3), kwargs=dict(groups=8, padding=2, dilation=2)),
    # 2 -> 3 channels per group, 16 groups: two GEMM groups of 8, outputs padded 3 -> 8.
    ConvCase(False, (1, 32, 4, 5), (48, 2, 1, 3), kwargs=dict(groups=16, padding=(0, 1))),
    # The fused channel shuffle of ShuffleNet's grouped 1x1: a packed group's channels scatter.
    ConvCase(False, (1, 24, 4, 4), (24, 6, 1, 1), shuffled=True, kwargs=dict(groups=4)),
    # ResNeXt-50 32x4d's stage 1 in miniature, 32 groups of 4 -> 4: the weight gradient pads
    # outputs to 16 bytes only, so float32 packs 16 groups to a GEMM group there (8 in fprop).
    ConvCase(False, (1, 128, 5, 4), (128, 4, 3, 3), bias=False, kwargs=dict(groups=32, padding=1)),
    # 32 groups of 2 -> 2: float64's weight gradient packs all 32 (the most a GEMM group holds).
    ConvCase(False, (1, 64, 4, 4), (64, 2, 3, 3), kwargs=dict(groups=32, padding=1)),
    # Half types: 8 groups of 4, two a 16-byte chunk, with the shuffle fused (padded outputs
    # copied a value a thread to scattered channels).
    ConvCase(False, (1, 32, 4, 5), (32, 4, 1, 1), shuffled=True, kwargs=dict(groups=8)),
    # Half types: 4 groups of 4 sharing chunks in fprop and in each stride phase of dgrad.
    ConvCase(False, (2, 16, 7, 6), (16, 4, 3, 3), kwargs=dict(groups=4, padding=1, stride=2)),
    # 8 groups of 4, 2x2: the weight gradient's 4 taps x 32 channels fill 128 columns, which its
    # packed 64x128 tile takes on CUDA cores too (IEEE float32).
    ConvCase(False, (1, 32, 5, 5), (32, 4, 2, 2), kwargs=dict(groups=8, padding=1)),
    # conv_transpose2d: its forward is a packed dgrad, its input gradient a packed fprop.
    ConvCase(True, (1, 16, 4, 5), (16, 3, 3, 3), kwargs=dict(groups=4, stride=2, padding=1, output_padding=1)),
]


@pytest.mark.parametrize("layout", [None, torch.channels_last], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype,tf32", TYPES, ids=TYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_packed_groups_match_float64_reference(case, dtype, tf32, layout):
    with tf32_allowed(tf32):
        assert_matches_torch(simt, case, dtype=dtype, memory_format=layout, tf32=tf32)


@pytest.mark.parametrize("dtype,tf32", TYPES, ids=TYPE_IDS)
def test_small_groups_take_the_packed_gemm_in_every_pass(dtype, tf32):
    x = torch.randn(1, 32, 6, 6).to(dtype).requires_grad_()
    w = torch.randn(32, 4, 3, 3).to(dtype).requires_grad_()
    with tf32_allowed(tf32):
        assert packed_kernels(lambda: simt.conv2d(x, w, padding=1, groups=8))
        y = simt.conv2d(x, w, padding=1, groups=8)
        assert packed_kernels(lambda: torch.autograd.grad(y, x, torch.ones_like(y), retain_graph=True))
        assert packed_kernels(lambda: torch.autograd.grad(y, w, torch.ones_like(y)), WGRAD_KERNEL)


def assert_only_group_2_is_infinite(out, ref):
    """Channels 8-11 (group 2) of `out` along dim 1 hold Inf or NaN as `ref` does; the others are finite and right."""
    others = torch.ones(out.shape[1], dtype=torch.bool)
    others[2 * 4:3 * 4] = False
    assert torch.isfinite(out[:, others]).all()
    assert (out[:, others] - ref[:, others]).abs().max() < 0.1 * ref[:, others].abs().max()
    assert not torch.isfinite(out[:, ~others]).all() and not torch.isfinite(ref[:, ~others]).all()


@pytest.mark.parametrize("where", ["input", "weight"])
@pytest.mark.parametrize("dtype,tf32", TYPES, ids=TYPE_IDS)
def test_an_infinite_value_stays_in_its_group(dtype, tf32, where):
    """Groups of 4 channels packed 8 to a GEMM group: an Inf in group 2's input (or filter) makes
    group 2's outputs infinite or NaN, as in torch, and leaves the other seven finite and right.
    A product of the block-diagonal filters' zeros with it would spread NaN to all eight."""
    x = torch.randn(1, 32, 5, 5, dtype=torch.float64)
    w = torch.randn(32, 4, 3, 3, dtype=torch.float64)
    if where == "input":
        x[0, 2 * 4 + 1, 2, 2] = math.inf
    else:
        w[2 * 4 + 3, 1, 1, 1] = math.inf
    with tf32_allowed(tf32):
        got = simt.conv2d(x.to(dtype), w.to(dtype), padding=1, groups=8).double()
        transposed = simt.conv_transpose2d(x.to(dtype), w.to(dtype), padding=1, groups=8).double()
    expected = torch.nn.functional.conv2d(x, w, padding=1, groups=8)
    expected_t = torch.nn.functional.conv_transpose2d(x, w, padding=1, groups=8)
    assert_only_group_2_is_infinite(got, expected)
    assert_only_group_2_is_infinite(transposed, expected_t)


@pytest.mark.parametrize("dtype,tf32", TYPES, ids=TYPE_IDS)
def test_an_infinite_input_stays_in_its_groups_weight_gradient(dtype, tf32):
    """The weight gradient's m16n8 tiles straddle groups (rows of groups 2 and 3 meet group 2's
    columns): an Inf in group 2's input reaches only group 2's filters."""
    x = torch.randn(1, 32, 5, 5, dtype=torch.float64)
    x[0, 2 * 4 + 1, 2, 2] = math.inf
    w = torch.randn(32, 4, 3, 3, dtype=torch.float64)
    dy = torch.randn(1, 32, 5, 5, dtype=torch.float64)
    with tf32_allowed(tf32):
        w_leaf = w.to(dtype).requires_grad_()
        got, = torch.autograd.grad(simt.conv2d(x.to(dtype), w_leaf, padding=1, groups=8), w_leaf, dy.to(dtype))
    w_ref = w.clone().requires_grad_()
    expected, = torch.autograd.grad(torch.nn.functional.conv2d(x, w_ref, padding=1, groups=8), w_ref, dy)
    assert_only_group_2_is_infinite(got.double().transpose(0, 1), expected.transpose(0, 1))


def test_only_the_diagonal_blocks_are_multiplied():
    """8 groups of 8 -> 8 bfloat16 channels, 1x1, 16x16 pixels (256 GEMM rows, two 128-row tiles):
    one GEMM group of 64 columns, 8 chunks of k per pixel. Each n8 tile takes its group's one chunk,
    half of one k16 step, as an m16n8k8: 16 m16 tiles x 8 n8 tiles x 1 MMA = 128 m16n8k8 MMAs,
    where multiplying the whole block-diagonal 64 x 64 filter would take 16 x 8 x 4 = 512 m16n8k16
    (and the chunk with zeros for its k16 step's other half, 128 m16n8k16)."""
    x = torch.randn(1, 64, 16, 16).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 8, 1, 1).to(torch.bfloat16)
    with simt.counters() as launched:
        simt.conv2d(x, w, groups=8)
    (name, counters), = launched.items()
    assert is_packed(name)
    assert counters.mma_1688 == (256 // 16) * (64 // 8) * 1 == 128 and counters.mma_16816 == 0
    assert counters.shared_bank_conflicts == 0


def test_tf32_multiplies_a_one_chunk_k_step_as_an_m16n8k4():
    """16 groups of 4 -> 4 float32 channels in TF32, 1x1, 16x16 pixels: 8 groups a GEMM group
    (outputs padded to an n8 tile), 4 channels a 16-byte chunk, a k8 step two groups' chunks. Each
    n8 tile takes its group's one chunk, an m16n8k4: 16 m16 tiles x 8 n8 tiles x 2 GEMM groups."""
    x = torch.randn(1, 64, 16, 16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 4, 1, 1)
    with tf32_allowed(True), simt.counters() as launched:
        simt.conv2d(x, w, groups=16)
    (name, counters), = launched.items()
    assert is_packed(name)
    assert counters.mma_1684 == 16 * 8 * 2 == 256 and counters.mma_1688 == 0


def packed_1x1_wgrad(dtype, channels, groups):
    """A 1x1 weight gradient of `groups` groups over 16x16 channels_last pixels (float32 in IEEE):
    (dw, its float64 reference, the reference's sum of |products|, the packed kernel's counters)."""
    x = torch.randn(1, channels, 16, 16, dtype=torch.float64).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels // groups, 1, 1, dtype=torch.float64).to(dtype).requires_grad_()
    with tf32_allowed(False):
        y = simt.conv2d(x, w, groups=groups)
        dy = torch.randn_like(y)
        with simt.counters() as launched:
            dw, = torch.autograd.grad(y, w, dy)
    (name, counters), = [(k, c) for k, c in launched.items() if WGRAD_KERNEL in k]
    assert is_packed(name, WGRAD_KERNEL)
    reference = torch.nn.functional.grad.conv2d_weight
    expected = reference(x.double(), w.shape, dy.double(), groups=groups)
    magnitude = reference(x.double().abs(), w.shape, dy.double().abs(), groups=groups)
    return dw.double(), expected, magnitude, counters


def test_only_the_tiles_on_the_diagonal_are_multiplied_in_wgrad():
    """The same 8 groups of 8 -> 8 bfloat16 channels: a 64 x 64 GEMM group, rows and columns in
    groups of 8, over 256 pixels (16 k16 steps). An m16 tile of rows meets its two groups' two n8
    tiles of columns: 4 x 2 = 8 of the 32 m16n8 tiles, 8 x 16 = 128 MMAs, where the whole GEMM
    group would take 32 x 16 = 512."""
    _, _, _, counters = packed_1x1_wgrad(torch.bfloat16, 64, 8)
    assert counters.mma_16816 == 8 * (256 // 16) == 128
    assert counters.shared_bank_conflicts == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_cuda_cores_multiply_only_the_halves_on_the_diagonal_in_wgrad(dtype):
    """IEEE float32 and float64: 8 groups of 8 -> 8 channels, 1x1, 16x16 pixels. A CUDA-core lane
    keeps the two 8-row halves of an m16 tile apart, each one group's outputs here, so a warp skips
    the half that meets another group's columns: every FMA is a product of one group, 8 x 8 x 256
    per group (a whole m16 tile would be twice that)."""
    dw, expected, magnitude, counters = packed_1x1_wgrad(dtype, 64, 8)
    assert (counters.ffma if dtype == torch.float32 else counters.dfma) == 8 * (8 * 8 * 256)
    assert ((dw - expected).abs() <= 16 * torch.finfo(dtype).eps * magnitude).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_half_type_groups_of_4_pack_unpadded_in_wgrad(dtype):
    """ResNeXt-50 32x4d's stage 1 in the weight gradient: 32 groups of 4 -> 4, 1x1, 16x16 pixels
    (16 k16 steps). Its products never cross groups, so 16 groups pack unpadded (64 rows, 64
    columns, 2 GEMM groups): an m16 tile's 4 groups of rows meet two n8 tiles of 2 groups' columns
    each, 8 x 16 x 2 = 256 MMAs (groups padded to 8 channels and 8 outputs took 512), a quarter of
    their products useful (an eighth before). The sums, in float, are within 16 roundings of the
    float32 sum of |products| and one rounding to the dtype."""
    dw, expected, magnitude, counters = packed_1x1_wgrad(dtype, 128, 32)
    assert counters.mma_16816 == 8 * (256 // 16) * 2 == 256
    assert counters.shared_bank_conflicts == 0
    bound = 16 * torch.finfo(torch.float32).eps * magnitude + torch.finfo(dtype).eps * expected.abs()
    assert ((dw - expected).abs() <= bound).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_half_type_groups_of_4_share_chunks_unpadded_in_fprop_and_dgrad(dtype):
    """ResNeXt-50 32x4d's stage 1 in fprop and dgrad: 16 groups of 4 -> 4 half-type channels, 1x1,
    16x16 channels_last pixels. 8 groups a GEMM group (outputs padded to an n8 tile) share 16-byte
    chunks, 2 a chunk, unpadded: the input is read as it comes, 256 pixels x 128 bytes = 1024
    sectors (padded to 8 channels a group: 2048), and each of the 2 x 64 filter rows reads the one
    chunk that holds its group's channels once a 128-pixel tile (256 sectors). Each n8 tile takes
    that chunk, an m16n8k8 with the other group's lanes zeroed: 16 m16 tiles x 8 n8 tiles x 2 GEMM
    groups = 256 MMAs, the same as padded. The outputs are staged and copied a value a thread,
    without bank conflicts. Both passes match float64."""
    # Operands drawn in the dtype, so that float64 references see the values the kernels do.
    x = torch.randn(1, 64, 16, 16).to(dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(64, 4, 1, 1).to(dtype)
    dy = torch.randn(1, 64, 16, 16).to(dtype).contiguous(memory_format=torch.channels_last)
    with simt.counters() as forward:
        y = simt.conv2d(x, w, groups=16)
    with simt.counters() as backward:
        dx, = torch.autograd.grad(y, x, dy)
    for launched in (forward, backward):
        (name, counters), = launched.items()
        assert is_packed(name)
        assert counters.mma_1688 == 16 * 8 * 2 == 256 and counters.mma_16816 == 0
        assert counters.global_load_sectors == 1024 + 2 * 128
        assert counters.shared_bank_conflicts == 0
    # Float sums of 4 products, rounded once to the dtype.
    tolerance = torch.finfo(dtype).eps
    expected = torch.nn.functional.conv2d(x.double(), w.double(), groups=16)
    torch.testing.assert_close(y.double(), expected, rtol=tolerance, atol=1e-6)
    expected_dx = torch.nn.functional.conv_transpose2d(dy.double(), w.double(), groups=16)
    torch.testing.assert_close(dx.double(), expected_dx, rtol=tolerance, atol=1e-6)
