"""The channels_last implicit GEMM (csrc/cuda/nhwc_igemm: tensor cores for float16, bfloat16 and
TF32, CUDA cores for IEEE float32 and float64), run by the SIMT emulator:
which passes take it, that it matches torch in float64 at its edges (channel counts that are not
a multiple of 16 bytes, several tiles, groups, the fused shuffle, misaligned and NCHW operands,
strided dgrad by stride phases), and what its counters show on an aligned shape: 16-byte loads
and stores at one request per 16 sectors and no shared-memory bank conflict, and no product of a
strided dgrad with an inserted zero."""
import re

import pytest
import torch

from conv_reference import (GEMM_TYPE_IDS, GEMM_TYPES, ConvCase, assert_matches_torch, tf32_allowed,
                            tolerance)

simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built (no CUDA headers)")

KERNEL = "channels_last_igemm_kernel"
TYPES, TYPE_IDS = GEMM_TYPES, GEMM_TYPE_IDS


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


def instantiation(name):
    """(several taps a stage, packed groups, bytes a copy) of a channels_last_igemm_kernel name:
    its last three template arguments (conv_kernel.cuh)."""
    several, packed, copy_bytes = re.search(r", (true|false), (true|false), (\d+)>$", name).groups()
    return several == "true", packed == "true", int(copy_bytes)


@pytest.mark.parametrize("dtype,tf32", TYPES, ids=TYPE_IDS)
def test_fprop_and_dgrad_take_the_channels_last_gemm(dtype, tf32):
    passes = passes_of(ConvCase(False, (1, 16, 6, 6), (24, 16, 3, 3), kwargs=dict(padding=1)), dtype, tf32)
    assert takes_it(passes["fprop"]) and takes_it(passes["dgrad"])
    # Strided dgrad, by stride phases.
    strided = passes_of(ConvCase(False, (1, 16, 6, 6), (24, 16, 3, 3), kwargs=dict(stride=2)), dtype, tf32)
    assert takes_it(strided["fprop"]) and takes_it(strided["dgrad"])
    # Stride 1 with padding past (R-1)*dil: the correlation crops grad_output (negative padding).
    cropped = passes_of(ConvCase(False, (1, 16, 5, 5), (24, 16, 3, 3), kwargs=dict(padding=3)), dtype, tf32)
    assert takes_it(cropped["dgrad"])
    # conv_transpose2d's forward is a dgrad, its input gradient an fprop.
    transposed = passes_of(ConvCase(True, (1, 16, 5, 5), (16, 8, 3, 3)), dtype, tf32)
    assert takes_it(transposed["fprop"]) and takes_it(transposed["dgrad"])
    # float32 multiplies on tensor cores (WarpMma) only in TF32, and float64 never.
    on_tensor_cores = {"WarpMma" in k for k in passes["fprop"]}
    assert on_tensor_cores == {dtype != torch.float64 and (dtype != torch.float32 or tf32)}


def test_depthwise_keeps_its_kernels():
    depthwise = passes_of(ConvCase(False, (1, 16, 6, 6), (16, 1, 3, 3), kwargs=dict(padding=1, groups=16)),
                          torch.bfloat16, False)
    assert not any(takes_it(k) for k in depthwise.values())


def test_groups_too_small_to_fill_a_tile_are_packed():
    """ResNeXt's groups of 4-16 channels: a 64-byte stage per tap and 64 output channels per block
    would multiply mostly zeros, so every pass packs several groups per GEMM group
    (test_packed_groups.py). Where no divisor of the groups packs them (11 groups of 2 -> 2: none
    of 2-8 divides 11), the weight gradient keeps the generation-1 GEMM's narrow tile."""
    small = passes_of(ConvCase(False, (1, 32, 6, 6), (32, 4, 3, 3), kwargs=dict(padding=1, groups=8)),
                      torch.bfloat16, False)
    assert all(takes_it(small[name]) for name in ("fprop", "dgrad"))
    assert any("channels_last_wgrad_kernel" in k for k in small["wgrad"])
    filled = passes_of(ConvCase(False, (1, 32, 6, 6), (64, 16, 3, 3), kwargs=dict(padding=1, groups=2)),
                       torch.bfloat16, False)
    assert takes_it(filled["fprop"]) and takes_it(filled["dgrad"])
    assert any("channels_last_wgrad_kernel" in k for k in filled["wgrad"])
    unpackable = passes_of(ConvCase(False, (1, 22, 5, 5), (22, 2, 3, 3), kwargs=dict(padding=1, groups=11)),
                           torch.bfloat16, False)
    assert not any("channels_last_wgrad_kernel" in k for k in unpackable["wgrad"])
    assert any("general_wgrad" in k for k in unpackable["wgrad"])


# Each case states the edge it reaches.
EDGES = [
    # 3 input channels, zero-padded to 16 bytes; stride 2; the 128x64 tile with a partial M tile.
    ConvCase(False, (1, 3, 13, 12), (16, 3, 3, 3), kwargs=dict(stride=2, padding=1)),
    # 136 output channels: the 128x128 tile, two n tiles, the second one 8 channels wide.
    ConvCase(False, (1, 16, 5, 7), (136, 16, 1, 1)),
    # 40 channels: two k-steps per tap, the second masked past channel 40.
    ConvCase(False, (2, 40, 7, 6), (24, 40, 3, 3), kwargs=dict(padding=2, dilation=2)),
    # Groups of 20 input (padded to 24) and 20 output channels: scalar stores; bias off.
    ConvCase(False, (2, 40, 8, 9), (40, 20, 3, 2), bias=False, kwargs=dict(groups=2, padding=(1, 0))),
    # The fused channel shuffle scatters each group's channels.
    ConvCase(False, (1, 32, 6, 6), (64, 16, 3, 3), shuffled=True, kwargs=dict(groups=2, padding=1)),
    # More than 128 output pixels per image and a filter reaching past the input (taps in padding).
    ConvCase(False, (1, 8, 12, 13), (8, 8, 5, 5), kwargs=dict(padding=4)),
    # conv_transpose2d at stride 1 with padding: dgrad on the tensor cores with padding (R-1)-pad.
    ConvCase(True, (2, 16, 6, 7), (16, 24, 3, 3), kwargs=dict(padding=1)),
]

# Strided dgrad (conv2d's input gradient, conv_transpose2d's forward), one GEMM per stride phase.
# (EDGES[0] is one too: 3 channels, stride 2.)
STRIDED_DGRAD_EDGES = [
    # Stride 3: phases of 1 and 2 taps per dimension, and a partial last phase row.
    ConvCase(False, (1, 8, 10, 11), (16, 8, 3, 3), kwargs=dict(stride=3, padding=1)),
    # Stride (2, 1): phases along the height only.
    ConvCase(False, (2, 16, 7, 6), (16, 16, 3, 2), kwargs=dict(stride=(2, 1), padding=(1, 0))),
    # Dilation 2 at stride 2: every tap reaches the even rows and columns, none the odd ones (bias only).
    ConvCase(False, (1, 16, 11, 10), (16, 16, 3, 3), kwargs=dict(stride=2, dilation=2, padding=2)),
    # A 1x1 filter at stride 2: only phase (0, 0) has a tap; the other three get the bias...
    ConvCase(False, (1, 16, 8, 7), (24, 16, 1, 1), kwargs=dict(stride=2)),
    # ... or zeros.
    ConvCase(True, (1, 24, 4, 4), (24, 16, 1, 1), bias=False, kwargs=dict(stride=2, output_padding=1)),
    # Stride 4 past a 1x1 filter: 15 phases without a tap, more than are launched one by one; one
    # launch fills dx with the bias first.
    ConvCase(False, (1, 16, 11, 11), (16, 16, 1, 1), kwargs=dict(stride=4)),
    # A stride of 2^20 (padding making dx 3x3): 9 phases hold pixels (not 2^40), no tap reaches any.
    ConvCase(True, (1, 8, 2, 2), (8, 8, 1, 1), kwargs=dict(stride=2 ** 20, padding=2 ** 19 - 1)),
    # conv_transpose2d at stride 2 with output_padding 1: a last row and column past the taps' reach.
    ConvCase(True, (1, 16, 5, 4), (16, 8, 3, 3), kwargs=dict(stride=2, padding=1, output_padding=1)),
    # The 2x2 stride-2 upsampling of decoders: one tap per phase.
    ConvCase(True, (1, 16, 4, 5), (16, 16, 2, 2), kwargs=dict(stride=2)),
    # Groups of 6 output and 10 input channels of dx, stride 2: padded channels, scalar stores.
    ConvCase(False, (2, 12, 7, 8), (20, 6, 3, 3), kwargs=dict(groups=2, stride=2, padding=1)),
    # Stride 1 with padding past (R-1)*dil: grad_output cropped (negative padding).
    ConvCase(True, (1, 16, 8, 7), (16, 8, 3, 3), kwargs=dict(padding=3)),
]

# Stages of several filter taps (filter_tap_cursor.cuh), where a group's channels are fewer than a
# stage's and divide it; each case states the edge it reaches (taps a stage: half types / float32
# / float64).
SEVERAL_TAPS_EDGES = [
    # A first layer, 3 channels padded to one chunk, 7x7 stride 2: 4 / 4 / 2 taps a stage, a stage
    # crossing a filter row, the last stage 1 tap of 4.
    ConvCase(False, (1, 3, 11, 10), (8, 3, 7, 7), kwargs=dict(stride=2, padding=3)),
    # 8 channels, 3 columns, dilation: 3 / 2 / 1 taps (half types: a stage is a filter row and its
    # fourth chunk masked throughout; float32: a stage crossing rows).
    ConvCase(False, (1, 8, 9, 8), (16, 8, 3, 3), kwargs=dict(padding=(1, 2), dilation=(1, 2))),
    # 3 output channels (a decoder's last layer): dgrad's GEMM multiplies over those 3, by stride
    # phases of 1 and 2 columns, and conv_transpose2d's input gradient likewise.
    ConvCase(False, (1, 16, 7, 8), (3, 16, 3, 3), kwargs=dict(stride=2, padding=1)),
    ConvCase(True, (1, 16, 4, 5), (16, 3, 4, 4), kwargs=dict(stride=2, padding=1)),
    # A 1x3 filter whose taps fit one stage with room to spare: 3 / 3 / 2 taps, chunk 3 masked.
    ConvCase(False, (2, 4, 5, 6), (8, 4, 1, 3)),
    # Channels within 8 bytes, copied in 8-byte pieces (chunk_copies.cuh): one grayscale channel,
    # padded to 4 / 2 / 1, 5 / 5 / 5 taps a stage (a filter row), ...
    ConvCase(False, (2, 1, 9, 8), (8, 1, 5, 5), kwargs=dict(padding=2)),
    # ... two float32 channels at a stride and dilation, ...
    ConvCase(False, (1, 2, 10, 9), (6, 2, 3, 3), kwargs=dict(stride=2, padding=1, dilation=2)),
    # ... and the input gradient of a layer with one output channel, by stride phases (one of
    # them a single tap: pieces whatever the taps a stage) ...
    ConvCase(False, (1, 8, 7, 8), (1, 8, 3, 3), kwargs=dict(stride=2, padding=1)),
    # ... of which some no tap reaches (a 1x1 filter at stride 2: GEMMs of no k-step, bias only).
    ConvCase(False, (1, 8, 6, 5), (2, 8, 1, 1), kwargs=dict(stride=2)),
]


@pytest.mark.parametrize("layout", [None, torch.channels_last], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype,tf32", TYPES, ids=TYPE_IDS)
@pytest.mark.parametrize("case", EDGES + STRIDED_DGRAD_EDGES + SEVERAL_TAPS_EDGES, ids=str)
def test_edges_match_float64_reference(case, dtype, tf32, layout):
    with tf32_allowed(tf32):
        assert_matches_torch(simt, case, dtype=dtype, memory_format=layout, tf32=tf32)


@pytest.mark.parametrize("case", EDGES[:3], ids=str)
def test_a_weight_in_the_other_layout_and_a_permuted_schedule(case):
    with simt.schedule("random:5"):
        assert_matches_torch(simt, case, dtype=torch.bfloat16, memory_format=torch.channels_last,
                             weight_memory_format=torch.contiguous_format)
        assert_matches_torch(simt, case, dtype=torch.bfloat16, weight_memory_format=torch.channels_last)


@pytest.mark.parametrize("case", [STRIDED_DGRAD_EDGES[i] for i in (0, 1, 2, 5, 7)], ids=str)
def test_strided_dgrad_under_a_permuted_schedule(case):
    with simt.schedule("random:7"):
        assert_matches_torch(simt, case, dtype=torch.bfloat16, memory_format=torch.channels_last)


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


@pytest.mark.parametrize("dtype,tf32", [(torch.bfloat16, False), (torch.float32, False), (torch.float64, False)],
                         ids=["bfloat16", "float32", "float64"])
def test_aligned_shape_moves_whole_sectors_without_bank_conflicts(dtype, tf32):
    """1x1, 64 -> 128 channels, 16x16 pixels: every cp.async lane copies 16 bytes, 8 rows of 64
    contiguous bytes per warp request (16 sectors); the epilogue stores 16 bytes a lane along whole
    rows (16 sectors); ldmatrix, the CUDA cores' 16-byte fragment loads and the staged epilogue
    meet no bank conflict; the math is the GEMM's, once."""
    x = torch.randn(1, 64, 16, 16).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(128, 64, 1, 1).to(dtype)
    with tf32_allowed(tf32), simt.counters() as launched:
        simt.conv2d(x, w)
    (name, counters), = launched.items()
    assert KERNEL in name
    assert counters.sectors_per_request == 16
    assert counters.shared_bank_conflicts == 0
    products = 256 * 128 * 64
    if dtype == torch.bfloat16:
        assert counters.mma_16816 == products // (16 * 8 * 16)
    else:
        assert (counters.ffma if dtype == torch.float32 else counters.dfma) == products


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_a_fused_shuffle_stores_each_sector_once_a_group_without_bank_conflicts(arch):
    """ShuffleNet's grouped 1x1 with the channel shuffle fused: 240 bfloat16 channels in 3 groups
    of 80, 8x8 channels_last pixels (sm_90a: the TMA kernel). Output channel n of group g is channel
    3n + g, so a group's tile writes every third value of a pixel. The staged outputs are copied out
    a value a thread, consecutive threads on consecutive columns: a warp's 32 values span 96
    channels, 6 whole sectors, and each group writes each of a pixel's 15 sectors once, 3 x 64 x 15
    = 2880 sectors, the compulsory 960 once a group (storing each thread's 16-byte piece a value
    at a time wrote 15360, with 1536 bank conflicts on sm_80 and 2304 on sm_90a). The result
    matches float64."""
    x = torch.randn(1, 240, 8, 8).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(240, 80, 1, 1).to(torch.bfloat16)
    with simt.arch(arch), simt.counters() as launched:
        got = simt.shuffled_conv2d(x, w, groups=3)
    (name, counters), = launched.items()
    assert ("channels_last_tma_igemm_kernel" if arch == "sm_90a" else KERNEL) in name
    assert counters.global_store_sectors == 3 * 64 * 15
    assert counters.shared_bank_conflicts == 0
    unshuffled = torch.nn.functional.conv2d(x.double(), w.double(), groups=3)
    expected = unshuffled.reshape(1, 3, 80, 8, 8).transpose(1, 2).reshape(1, 240, 8, 8)
    bound = torch.nn.functional.conv2d(x.double().abs(), w.double().abs(), groups=3)
    bound = bound.reshape(1, 3, 80, 8, 8).transpose(1, 2).reshape(1, 240, 8, 8)
    assert ((got.double() - expected).abs() <= tolerance(bound, torch.bfloat16)).all()


def test_3xtf32_reaches_float32_accuracy_on_tensor_cores_where_tf32_does_not():
    """set_float32_precision("3xtf32"): each float32 operand split into two TF32 numbers, three
    tensor-core products, in the forward and in both gradients. They then pass float32's own
    tolerance against float64; plain TF32 does not."""
    case = ConvCase(False, (1, 32, 9, 9), (40, 32, 3, 3), kwargs=dict(padding=1))
    x, w = torch.randn(case.input_shape), torch.randn(case.weight_shape)
    previous = simt.set_float32_precision("3xtf32")
    try:
        with tf32_allowed(False):
            (name,) = kernels_of(lambda: simt.conv2d(x, w, padding=1))
            assert KERNEL in name and "WarpMma" in name and "true" in name
            w_leaf = w.clone().requires_grad_()
            y = simt.conv2d(x, w_leaf, padding=1)
            with simt.counters() as launched:
                torch.autograd.grad(y, w_leaf, torch.ones_like(y))
            assert any("channels_last_wgrad_kernel<float" in k and "TransposedWarpMma" in k and "true" in k
                       for k in launched), list(launched)
            assert_matches_torch(simt, case, dtype=torch.float32)
    finally:
        assert simt.set_float32_precision(previous) == "3xtf32"
    with tf32_allowed(True), pytest.raises(AssertionError, match="output"):
        assert_matches_torch(simt, case, dtype=torch.float32, backward=False)


def test_float32_precision_is_default_or_3xtf32():
    assert simt.set_float32_precision("default") == "default"
    with pytest.raises(RuntimeError, match='float32 precision must be "default" or "3xtf32", but got "tf32"'):
        simt.set_float32_precision("tf32")


def test_strided_dgrad_multiplies_no_inserted_zero():
    """dgrad of a 3x3 stride-2 padding-1 conv2d, 16 -> 16 channels, 2 images of 16x16, bfloat16
    (conv_transpose2d's forward). dx row h receives the taps r with h + 1 - r even: even rows tap 1,
    odd rows taps 0 and 2. The four stride phases have 1x1, 1x2, 2x1 and 2x2 taps, 9 in all, and
    each phase's GEMM is one 128-pixel M tile (2 images x 8 x 8) by one 64-channel N tile (the
    128x64 tile, warps of 64 x 32: those of columns 32-63, past the 16 channels, multiply nothing).
    A 32-channel k-stage holds as many 16-channel taps as fit and a filter row has (at most 2): 1,
    1, 2 and 2 stages of 8 x 4 m16n8 tiles x 2 k16 steps = 64 MMAs, 384 in all; the same GEMM over
    grad_output with zeros inserted (a stride-1 dgrad of every tap at every pixel: 512 pixels, 4 M
    tiles, 5 stages of the 3x3 filter) would issue 4 x 5 x 64 = 1280."""
    dy = torch.randn(2, 16, 8, 8).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(16, 16, 3, 3).to(torch.bfloat16)
    with simt.counters() as launched:
        dx = simt.conv_transpose2d(dy, w, stride=2, padding=1, output_padding=1)
    assert all(KERNEL in name for name in launched) and dx.shape == (2, 16, 16, 16)
    mma = sum(counters.mma_16816 for counters in launched.values())
    phases_stages = [1, 1, 2, 2]  # taps 1x1, 1x2, 2x1, 2x2; two taps a stage within a filter row
    mma_per_stage = (128 // 16) * (32 // 8) * 2
    assert mma == sum(phases_stages) * mma_per_stage == 384
    zero_inserted = (2 * 16 * 16 // 128) * 5 * mma_per_stage
    assert mma * 3 < zero_inserted


def test_warps_past_a_groups_outputs_multiply_nothing():
    """ResNeXt-50's last stage in miniature: 2 groups of 32 -> 32 bfloat16 channels, 1x1, 8x8
    pixels. Each group's GEMM (64 pixels x 32 outputs x 32 channels) takes the 64x64 tile, whose
    warps of columns 32-63 multiply nothing: 4 m16 tiles x 4 n8 tiles x 2 k16 steps x 2 groups =
    64 MMAs, the GEMM's products once (the whole tile took 128)."""
    x = torch.randn(1, 64, 8, 8).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 32, 1, 1).to(torch.bfloat16)
    with simt.counters() as launched:
        got = simt.conv2d(x, w, groups=2)
    (name, counters), = launched.items()
    assert name.startswith(f"{KERNEL}<BFloat16, TileShape<64, 64, 32, 32, 4>")
    assert counters.mma_16816 == 4 * 4 * 2 * 2 == 64
    expected = torch.nn.functional.conv2d(x.double(), w.double(), groups=2)
    bound = torch.nn.functional.conv2d(x.double().abs(), w.double().abs(), groups=2)
    assert ((got.double() - expected).abs() <= tolerance(bound, torch.bfloat16)).all()


def test_a_first_layer_multiplies_seven_taps_a_stage():
    """3 bfloat16 channels, padded to 4 (8 bytes, not a 16-byte chunk's 8), 7x7 stride 2, 64
    outputs at 8x8: the operands are copied in 8-byte pieces, a tap each, and a stage's 32 channels
    hold 7 of the 49 taps (at most a filter row's 7; the eighth piece zeros): 7 stages, where 16-byte
    chunks of one tap each took 13 stages of 4 and one tap a stage 49. The 64x64 tile's 4 warps x
    2 x 4 m16n8 tiles x 2 k16 steps = 64 MMAs a stage."""
    x = torch.randn(1, 3, 16, 16).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 3, 7, 7).to(torch.bfloat16)
    with simt.counters() as launched:
        simt.conv2d(x, w, stride=2, padding=3)
    (name, counters), = launched.items()
    assert KERNEL in name and instantiation(name) == (True, False, 8)
    assert counters.mma_16816 == 7 * 64 == 448
    assert counters.shared_bank_conflicts == 0
