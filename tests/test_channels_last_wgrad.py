"""The weight gradient on the channels_last GEMM (csrc/cuda/nhwc_igemm/wgrad_kernel.cuh: tensor
cores for float16, bfloat16 and TF32, CUDA cores for IEEE float32 and float64), run by the SIMT
emulator: which convolutions take it, that it matches torch in float64 at its edges
(3 channels, channel counts that are not a multiple of 16 bytes, groups, stride, dilation, padding
past the filter's reach, several tiles, tiles that span taps, a split reduction, conv_transpose2d),
that a split gives the same bits on every run, what its counters show on an aligned shape
(16-byte cp.async loads at 16 sectors per request, no shared-memory bank conflict, every MMA of the
GEMM once), that one split stores dw itself and more are reduced once, and that small channel
counts pack several taps into a tile."""
import pytest
import torch

from conv_reference import GEMM_TYPE_IDS, GEMM_TYPES, ConvCase, assert_matches_torch, tf32_allowed

simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built (no CUDA headers)")

KERNEL = "channels_last_wgrad_kernel"
REDUCE = "channels_last_wgrad_reduce_kernel"
TYPES, TYPE_IDS = GEMM_TYPES, GEMM_TYPE_IDS


def wgrad_counters(case, dtype, tf32, layout=None, seed=0):
    """(grad_weight, {kernel name: counters}) of the case's weight gradient alone."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(case.input_shape, generator=generator).to(dtype)
    w = torch.randn(case.weight_shape, generator=generator).to(dtype).requires_grad_()
    if layout is not None:
        x = x.contiguous(memory_format=layout)
    with tf32_allowed(tf32):
        y = case.ours(simt)(x, w, **case.kwargs)
        dy = torch.randn(y.shape, generator=generator).to(dtype).contiguous(memory_format=layout or torch.contiguous_format)
        with simt.counters() as launched:
            (dw,) = torch.autograd.grad(y, w, dy)
    return dw, launched


def takes_it(kernels):
    return any(KERNEL in k for k in kernels)


DENSE = ConvCase(False, (1, 16, 6, 6), (24, 16, 3, 3), kwargs=dict(padding=1))


@pytest.mark.parametrize("layout", [None, torch.channels_last], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype,tf32", TYPES, ids=TYPE_IDS)
def test_wgrad_takes_the_channels_last_gemm(dtype, tf32, layout):
    for case in (DENSE, ConvCase(True, (1, 16, 5, 5), (16, 8, 3, 3), kwargs=dict(stride=2))):
        _, launched = wgrad_counters(case, dtype, tf32, layout)
        assert takes_it(launched), launched.keys()


def test_depthwise_and_unpackable_small_groups_keep_their_kernels():
    """Small groups are packed (test_packed_groups.py) unless no divisor of the groups packs them."""
    unpackable = ConvCase(False, (1, 22, 6, 6), (22, 2, 3, 3), kwargs=dict(padding=1, groups=11))
    _, launched = wgrad_counters(unpackable, torch.bfloat16, False, torch.channels_last)
    assert launched and not takes_it(launched)
    depthwise = ConvCase(False, (1, 16, 6, 6), (16, 1, 3, 3), kwargs=dict(padding=1, groups=16))
    _, launched = wgrad_counters(depthwise, torch.bfloat16, False, torch.channels_last)
    assert launched and not takes_it(launched)


# Each case states the edge it reaches.
EDGES = [
    # 3 input channels, zero-padded to 16 bytes; stride 2: the first layer of a network.
    ConvCase(False, (1, 3, 13, 12), (16, 3, 3, 3), kwargs=dict(stride=2, padding=1)),
    # Groups of 18 input and 20 output channels: padded to 24 and 24 (half types), the padding
    # masked on store.
    ConvCase(False, (2, 36, 8, 9), (40, 18, 3, 2), bias=False, kwargs=dict(groups=2, padding=(1, 0))),
    # 17 channels per group (odd: scalar partial stores), 3 groups, dilation.
    ConvCase(False, (1, 51, 9, 8), (51, 17, 2, 3), kwargs=dict(groups=3, dilation=(2, 1), padding=1)),
    # Padding past the filter's reach: the op trims taps that read only padding, the rest read some.
    ConvCase(False, (1, 8, 6, 5), (16, 8, 3, 3), kwargs=dict(padding=(3, 4))),
    # 72 output and 72 input channels: two m tiles and two channel tiles per tap, the second 8 wide.
    ConvCase(False, (1, 72, 5, 4), (72, 72, 1, 1)),
    # Stride 2 with dilation; 288 pixels: GEMM-K split in 2 (half types) or 4 (32- and 64-bit types) ranges.
    ConvCase(False, (2, 8, 23, 23), (8, 8, 3, 3), kwargs=dict(stride=2, dilation=2, padding=1)),
    # conv_transpose2d's weight gradient (its roles swapped), stride 2; 24 channels x 9 taps: tiles span taps.
    ConvCase(True, (2, 16, 6, 7), (16, 24, 3, 3), kwargs=dict(padding=1, stride=2)),
]


@pytest.mark.parametrize("layout", [None, torch.channels_last], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype,tf32", TYPES, ids=TYPE_IDS)
@pytest.mark.parametrize("case", EDGES, ids=str)
def test_edges_match_float64_reference(case, dtype, tf32, layout):
    with tf32_allowed(tf32):
        assert_matches_torch(simt, case, dtype=dtype, memory_format=layout, tf32=tf32)


@pytest.mark.parametrize("dtype,tf32", [(torch.bfloat16, False), (torch.float32, True)], ids=["bfloat16", "tf32"])
@pytest.mark.parametrize("case", [EDGES[0], EDGES[4], EDGES[5]], ids=str)
def test_a_permuted_schedule(case, dtype, tf32):
    """Threads of a block run in a random order: a missing barrier in the pipeline shows."""
    with simt.schedule("random:5"), tf32_allowed(tf32):
        assert_matches_torch(simt, case, dtype=dtype, memory_format=torch.channels_last, tf32=tf32)


SPLIT = EDGES[5]


@pytest.mark.parametrize("dtype,tf32", TYPES, ids=TYPE_IDS)
def test_a_split_reduction_gives_the_same_bits_every_run(dtype, tf32):
    """The reduction adds the splits in a fixed order, whatever order the blocks ran in."""
    first, launched = wgrad_counters(SPLIT, dtype, tf32, torch.channels_last)
    (reduce,) = [c for name, c in launched.items() if REDUCE in name]
    weight_numel = first.numel()
    assert reduce.global_load_requests * 32 >= 2 * weight_numel  # at least two splits were summed
    with simt.schedule("reversed"):
        second, _ = wgrad_counters(SPLIT, dtype, tf32, torch.channels_last)
    bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[dtype.itemsize]
    assert torch.equal(first.view(bits), second.view(bits))


def test_aligned_shape_moves_whole_sectors_without_bank_conflicts():
    """1x1, 64 -> 64 channels, 16x16 pixels, bfloat16, channels_last: every cp.async lane copies 16
    bytes, 4 pixels of 128 contiguous bytes per warp request (16 sectors); ldmatrix.trans on the
    padded [k][m] / [k][n] tiles meets no bank conflict; the float partials are stored in 8-byte
    pairs (8 sectors per request). The GEMM (64 x 64, depth 256) is split in two (steps / 4 = 2)."""
    x = torch.randn(1, 64, 16, 16).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    dy = torch.randn(1, 64, 16, 16).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with simt.counters() as launched:
        dw = torch.ops.convkernels_simt.conv2d_weight(x, dy, [64, 64, 1, 1], [1, 1], [0, 0], [1, 1], 1)
    (counters,) = [c for name, c in launched.items() if KERNEL in name]
    assert counters.global_load_sectors == 16 * counters.global_load_requests
    assert counters.global_store_sectors == 8 * counters.global_store_requests
    assert counters.shared_bank_conflicts == 0
    assert counters.mma_16816 == (64 // 16) * (64 // 8) * (256 // 16)  # every MMA of the GEMM, once
    expected = torch.nn.functional.grad.conv2d_weight(x.double(), (64, 64, 1, 1), dy.double())
    assert (dw.double() - expected).abs().max() <= 0.05 * expected.abs().max()


@pytest.mark.parametrize("dtype,tf32", [(torch.bfloat16, False), (torch.float32, True)], ids=["bfloat16", "tf32"])
@pytest.mark.parametrize("outputs,channels,taps,rows,columns", [
    (64, 64, 3, 64, 128), (64, 136, 1, 64, 64), (128, 64, 3, 128, 128), (112, 24, 1, 128, 64), (136, 24, 1, 64, 64)])
def test_tensor_core_tiles_double_where_little_is_padding(outputs, channels, taps, rows, columns, dtype, tf32):
    """On mma.sync, 128 columns of (tap, channel) and 128 rows (output channels), each where the
    doubled extent pads the GEMM's to at most 1.25x what 64 does (64 channels x 9 taps: 640 columns
    for 576; not 136 x 1: 256 for 192; 128 and 112 outputs: 128 rows for 128; not 136: 256 for
    192): dy is read once per column tile and x once per row tile. Warps stay 32 rows by half the
    block's columns, the stages' padded rows free of bank conflicts; the result as torch's."""
    case = ConvCase(False, (2, channels, 7, 6), (outputs, channels, taps, taps), kwargs=dict(padding=taps // 2))
    _, launched = wgrad_counters(case, dtype, tf32, torch.channels_last)
    ((name, counters),) = [(n, c) for n, c in launched.items() if KERNEL in n]
    assert f"WgradTile<{'BFloat16' if dtype == torch.bfloat16 else 'float'}, {rows}, {columns}, 32, {columns // 2}, 4>" in name
    assert "TransposedWarpMma" in name and counters.shared_bank_conflicts == 0
    with tf32_allowed(tf32):
        assert_matches_torch(simt, case, dtype=dtype, memory_format=torch.channels_last, tf32=tf32)


def test_cuda_core_wgrad_doubles_only_where_that_pads_nothing_and_three_tf32_keeps_64():
    """IEEE float32 on CUDA cores is bound by its FMAs, so it doubles an extent only where that
    adds no padding: 128 outputs, 64 channels x 9 taps (576 columns, 640 at 128): 128 x 64, on
    warps of 64 x 32. 3xTF32 (its split fragments need the registers) keeps 64 x 64."""
    case = ConvCase(False, (2, 64, 7, 6), (128, 64, 3, 3), kwargs=dict(padding=1))
    _, launched = wgrad_counters(case, torch.float32, False, torch.channels_last)
    assert any(KERNEL in n and "WgradTile<float, 128, 64, 64, 32, 4>" in n for n in launched), launched.keys()
    previous = simt.set_float32_precision("3xtf32")
    try:
        _, launched = wgrad_counters(case, torch.float32, False, torch.channels_last)
    finally:
        simt.set_float32_precision(previous)
    assert any(KERNEL in n and "WgradTile<float, 64, 64, 32, 32, 4>" in n and "true" in n for n in launched), launched.keys()


def test_one_split_stores_dw_itself_in_its_dtype():
    """3x3, 64 -> 64 channels, 16x16, bfloat16: one split (a second one's float partials, written
    and read back (2 x 147 KB), would move more bytes than x and dy hold (64 KB), where the
    parallelism alone (8 stages) asked for 2), so the GEMM's blocks store dw itself in bfloat16, a
    quad's 4 n8 tiles transposed so that each lane stores 8 columns: whole sectors, each once; and
    no reduction runs."""
    case = ConvCase(False, (1, 64, 16, 16), (64, 64, 3, 3), kwargs=dict(padding=1))
    dw, launched = wgrad_counters(case, torch.bfloat16, False, torch.channels_last)
    assert not any(REDUCE in name for name in launched)
    (gemm,) = [c for name, c in launched.items() if KERNEL in name]
    assert gemm.global_store_sectors == 64 * 64 * 9 * 2 // 32
    assert dw.is_contiguous(memory_format=torch.channels_last)


def test_the_reduction_reads_each_partial_once_and_writes_dw_once():
    """With splits, the reduction reads every float partial once and writes dw once, both along
    the weight's channels_last memory: whole sectors, 4 a request of 32 floats."""
    dw, launched = wgrad_counters(SPLIT, torch.bfloat16, False, torch.channels_last)
    (gemm,) = [c for name, c in launched.items() if KERNEL in name]
    (reduce,) = [c for name, c in launched.items() if REDUCE in name]
    assert reduce.global_load_sectors == gemm.global_store_sectors
    assert reduce.global_store_sectors == -(-dw.numel() * 2 // 32)
    assert reduce.global_load_sectors <= 4 * reduce.global_load_requests


@pytest.mark.parametrize("dtype,channels,tile", [
    (torch.float32, 64, "64, 64, 32, 32"), (torch.float32, 128, "128, 128, 64, 32"),
    (torch.float64, 64, "64, 64, 32, 32"), (torch.float64, 128, "64, 64, 32, 32")],
    ids=["float32-64", "float32-128", "float64-64", "float64-128"])
def test_cuda_core_types_multiply_every_product_once_without_bank_conflicts(dtype, channels, tile):
    """IEEE float32 and float64 on CUDA cores, on the same [k][m] / [k][n] stages: 1x1, channels ->
    channels, 16x16 pixels: channels^2 * 256 FMAs, 16-byte cp.async lanes (16 sectors per request),
    and A reads of 8 consecutive elements and B reads of 4 consecutive pairs per quarter-warp, which
    meet no bank conflict. 128 channels take float32's 128 x 128 tile of 64 x 32 warps (no padding
    either way); float64 keeps 64 x 64 (a 64 x 32 warp's accumulators would spill)."""
    x = torch.randn(1, channels, 16, 16, dtype=dtype).contiguous(memory_format=torch.channels_last)
    dy = torch.randn(1, channels, 16, 16, dtype=dtype).contiguous(memory_format=torch.channels_last)
    weight_size = [channels, channels, 1, 1]
    with tf32_allowed(False), simt.counters() as launched:
        dw = torch.ops.convkernels_simt.conv2d_weight(x, dy, weight_size, [1, 1], [0, 0], [1, 1], 1)
    (name, counters), = [(name, c) for name, c in launched.items() if KERNEL in name]
    assert "TransposedCudaCoreMma" in name and f"WgradTile<{'float' if dtype == torch.float32 else 'double'}, {tile}, 4>" in name
    assert (counters.ffma if dtype == torch.float32 else counters.dfma) == channels * channels * 256
    assert counters.mma_1688 == counters.mma_16816 == 0
    assert counters.global_load_sectors == 16 * counters.global_load_requests
    assert counters.shared_bank_conflicts == 0
    # Against float64: each of the 256-term sums within 16 roundings of its sum of |products|.
    expected = torch.nn.functional.grad.conv2d_weight(x.double(), weight_size, dy.double())
    magnitude = torch.nn.functional.grad.conv2d_weight(x.double().abs(), weight_size, dy.double().abs())
    assert ((dw.double() - expected).abs() <= 16 * torch.finfo(dtype).eps * magnitude).all()


def test_a_first_layer_packs_several_taps_per_tile():
    """3 channels (padded to 8) x 9 taps are 72 GEMM columns: two 64-wide n tiles, not nine tiles of
    one tap each. 64 pixels are 4 k-steps of 16; each tile's 4 warps do 2 x 4 MMAs per k-step."""
    x = torch.randn(1, 3, 8, 8).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    dy = torch.randn(1, 16, 8, 8).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with simt.counters() as launched:
        dw = torch.ops.convkernels_simt.conv2d_weight(x, dy, [16, 3, 3, 3], [1, 1], [1, 1], [1, 1], 1)
    (counters,) = [c for name, c in launched.items() if KERNEL in name]
    assert counters.mma_16816 == 2 * 4 * (2 * 4) * 4
    expected = torch.nn.functional.grad.conv2d_weight(x.double(), (16, 3, 3, 3), dy.double(), padding=1)
    assert (dw.double() - expected).abs().max() <= 0.05 * expected.abs().max()

