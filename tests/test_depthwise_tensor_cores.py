"""Large depthwise filters on tensor cores (csrc/cuda/depthwise_mma.cuh), run by the SIMT emulator.
In float16 and bfloat16, NCHW, at unit stride, filters of 7x7 and larger whose dilated rows span at
most 33 columns multiply banded (Toeplitz) filter matrices with mma.m16n8k16: the forward, and the
input gradient (conv_transpose2d's forward) as the correlation of the flipped filter. They match
torch in float64 over the edges of that: planes that take one to four warps of 16 rows by one, two
or four 16-column tiles, planes spanning several blocks, rows that are not whole vectors, the
widest span (two and three 16-column blocks a row), dilation, multiplier 2, no bias, output
padding; channels_last filters from 10x10 on, relaid out to NCHW; the counters show only
tensor-core math, the number of mma.m16n8k16 the tiling implies, and no bank conflicts. Strided, smaller or wider filters, planes
too small for an eighth of the tensor-core work to be useful, and the other dtypes keep the
CUDA-core kernels."""
import pytest
import torch

from conv_reference import ConvCase, assert_matches_torch

simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built (no CUDA headers)")

HALF_TYPES = [torch.float16, torch.bfloat16]


def depthwise(channels, kernel, multiplier=1, size=(16, 16), bias=True, **kwargs):
    return ConvCase(False, (1, channels, *size), (channels * multiplier, 1, *kernel), bias=bias,
                    kwargs=dict(groups=channels, **kwargs))


CASES = [
    depthwise(2, (11, 11), size=(12, 14), padding=5),                    # one warp, one m-tile
    depthwise(2, (27, 27), size=(14, 14), padding=13),                   # RepLKNet's stage 3
    depthwise(2, (11, 11), size=(20, 30), padding=5),                    # two warps, two m-tiles
    depthwise(2, (13, 13), size=(20, 23), padding=6),                    # rows not whole vectors
    depthwise(2, (31, 31), size=(34, 37), padding=15),                   # span 31: three blocks
    depthwise(2, (13, 11), size=(100, 80), padding=(6, 5)),              # 2 x 2 blocks of 64 x 64
    depthwise(2, (7, 11), size=(16, 60), dilation=2, padding=(6, 10)),   # span 21
    depthwise(2, (9, 9), multiplier=2, size=(12, 16), bias=False),   # input gradient: 2 sources
    ConvCase(True, (1, 2, 10, 16), (2, 1, 11, 11), kwargs=dict(groups=2, padding=2)),
    ConvCase(True, (1, 2, 10, 16), (2, 1, 9, 9), kwargs=dict(groups=2, padding=3, dilation=2, output_padding=1)),
]


@pytest.mark.parametrize("dtype", HALF_TYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_torch(case, dtype):
    with simt.counters() as counted:
        assert_matches_torch(simt, case, dtype)
    assert any(name.startswith("depthwise_mma_kernel") for name in counted)


# channels_last from 10x10 filters on: relaid out to NCHW for the tensor cores and back.
CHANNELS_LAST_CASES = [
    depthwise(2, (11, 11), size=(20, 30), padding=5),
    depthwise(2, (31, 31), size=(34, 37), padding=15),
    depthwise(2, (13, 13), multiplier=2, size=(16, 20), padding=6),
    ConvCase(True, (1, 2, 10, 16), (2, 1, 11, 11), kwargs=dict(groups=2, padding=2)),
]


@pytest.mark.parametrize("dtype", HALF_TYPES, ids=str)
@pytest.mark.parametrize("case", CHANNELS_LAST_CASES, ids=str)
def test_channels_last_large_filters_take_the_tensor_cores(case, dtype):
    with simt.counters() as counted:
        assert_matches_torch(simt, case, dtype, memory_format=torch.channels_last)
    assert any(name.startswith("depthwise_mma_kernel") for name in counted)
    assert not any(name.startswith("depthwise_nhwc") for name in counted if "wgrad" not in name)


def test_channels_last_filters_under_10x10_keep_the_nhwc_kernels():
    x = torch.randn(1, 16, 20, 20).bfloat16().contiguous(memory_format=torch.channels_last)
    w = torch.randn(16, 1, 9, 9).bfloat16()
    with simt.counters() as counted:
        simt.conv2d(x, w, padding=4, groups=16)
    assert [name.split("<")[0] for name in counted] == ["depthwise_nhwc_staged_kernel"]


@pytest.mark.parametrize("transposed", [False, True], ids=["forward", "input gradient"])
def test_a_13x13_filter_runs_on_tensor_cores_only(transposed):
    """A 64x64 plane is one block of 4 warps, each, for each of the 13 filter rows and its 2
    n-tiles, issuing 4 m-tiles x 2 column blocks of mma.m16n8k16, and no FFMA; 0 bank conflicts."""
    x, w = torch.randn(1, 2, 64, 64).bfloat16(), torch.randn(2, 1, 13, 13).bfloat16()
    with simt.counters() as counted:
        if transposed:
            simt.conv_transpose2d(x, w, None, 1, 6, 0, 2)
        else:
            simt.conv2d(x, w, None, 1, 6, 1, 2)
    assert list(counted) == [f"depthwise_mma_kernel<BFloat16, 2, 4, {str(transposed).lower()}>"]
    k = next(iter(counted.values()))
    assert k.mma_16816 == 2 * 4 * 13 * 2 * 4 * 2
    assert k.ffma == 0
    assert k.shared_bank_conflicts == 0


def test_the_fused_channel_shuffle_places_each_output_plane():
    """shuffled_conv2d's output channel of plane k is that of channel_shuffle(conv2d(...)): with a
    multiplier of 2, 8 planes land 4 apart."""
    x, w, b = torch.randn(1, 4, 20, 20).bfloat16(), torch.randn(8, 1, 11, 11).bfloat16(), torch.randn(8).bfloat16()
    with simt.counters() as counted:
        y = simt.shuffled_conv2d(x, w, b, 1, 5, 1, 4)
    assert [name.split("<")[0] for name in counted] == ["depthwise_mma_kernel"]
    expected = torch.nn.functional.conv2d(x.double(), w.double(), b.double(), 1, 5, 1, 4)
    expected = expected.reshape(1, 4, 2, 20, 20).transpose(1, 2).reshape(1, 8, 20, 20)
    bound = torch.nn.functional.conv2d(x.double().abs(), w.double().abs(), b.double().abs(), 1, 5, 1, 4)
    bound = bound.reshape(1, 4, 2, 20, 20).transpose(1, 2).reshape(1, 8, 20, 20)
    assert ((y.double() - expected).abs() <= 4 * 2.0 ** -8 * bound).all()


def assert_non_finite_where_torch_has_them(ours, theirs):
    ours = ours.double()
    assert torch.equal(ours.isnan(), theirs.isnan()) and torch.equal(ours.isinf(), theirs.isinf())
    finite = theirs.isfinite()
    torch.testing.assert_close(ours[finite], theirs[finite], rtol=0.02, atol=0.05)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
def test_non_finite_inputs_reach_exactly_the_outputs_that_read_them(transposed):
    """The Toeplitz blocks' zeros meet every staged value of a row, so a block that stages an Inf or
    a NaN computes exactly: Inf/NaN where torch has them and nowhere else."""
    x = torch.randn(1, 2, 40, 40).bfloat16()
    x[0, 0, 5, 7], x[0, 1, 30, 33] = float("inf"), float("nan")
    w = torch.randn(2, 1, 13, 13).bfloat16()
    op = "conv_transpose2d" if transposed else "conv2d"
    with simt.counters() as counted:
        ours = getattr(simt, op)(x, w, padding=6, groups=2)
    assert [name.split("<")[0] for name in counted] == ["depthwise_mma_kernel"]
    assert_non_finite_where_torch_has_them(ours, getattr(torch.nn.functional, op)(x.double(), w.double(), padding=6, groups=2))


def test_an_infinite_tap_makes_infinities_not_nans():
    """An Inf tap times the finite inputs it meets: Inf of their signs, not NaN of 0 * Inf from the
    Toeplitz blocks' zeros (no padding: where a tap meets padding torch's paths differ, NaN from an
    explicit zero pad or nothing from a skipped tap; ours skip it)."""
    x, w = torch.randn(1, 2, 40, 40).bfloat16(), torch.randn(2, 1, 13, 13).bfloat16()
    w[1, 0, 0, 0] = float("inf")
    with simt.counters() as counted:
        ours = simt.conv2d(x, w, groups=2)
    assert [name.split("<")[0] for name in counted] == ["depthwise_mma_kernel"]
    theirs = torch.nn.functional.conv2d(x.double(), w.double(), groups=2)
    assert theirs[0, 1].isinf().all()
    assert_non_finite_where_torch_has_them(ours, theirs)


@pytest.mark.parametrize("dtype, kernel, size, kwargs", [
    (torch.bfloat16, 5, 40, dict(padding=2)),               # small filters
    (torch.bfloat16, 7, 40, dict(padding=3, stride=2)),     # strided
    (torch.bfloat16, 13, 40, dict(padding=18, dilation=3)),  # span 37: more than three blocks
    (torch.bfloat16, 13, 7, dict(padding=6)),               # 19% of a 16x16 tile x 13 of 32 taps
    (torch.float32, 13, 40, dict(padding=6)),
], ids=["5x5", "stride 2", "span 37", "13x13 on 7x7", "float32"])
def test_other_filters_keep_the_cuda_core_kernels(dtype, kernel, size, kwargs):
    x, w = torch.randn(1, 2, size, size).to(dtype), torch.randn(2, 1, kernel, kernel).to(dtype)
    with simt.counters() as counted:
        simt.conv2d(x, w, groups=2, **kwargs)
    assert [name.split("<")[0] for name in counted] == ["depthwise_fprop_kernel"]


# The weight gradient of large filters (csrc/cuda/depthwise_mma_wgrad.cuh): a GEMM of the filter's
# columns by its rows over (image, input row, output column), Hankel rows of x by rows of dy.
WGRAD_KERNEL = "depthwise_mma_wgrad_kernel"


def weight_gradient(x, dy, weight_shape, padding, groups, layout=torch.contiguous_format):
    """(ours, torch's in float64, a bound on |each term| summed) for conv2d_weight of x and dy, and
    the kernels that ran."""
    x, dy = x.contiguous(memory_format=layout), dy.contiguous(memory_format=layout)
    with simt.counters() as counted:
        ours = torch.ops.convkernels_simt.conv2d_weight(x, dy, list(weight_shape), [1, 1], list(padding), [1, 1],
                                                        groups)
    grad = torch.nn.functional.grad.conv2d_weight
    theirs = grad(x.double(), weight_shape, dy.double(), padding=padding, groups=groups)
    bound = grad(x.double().abs(), weight_shape, dy.double().abs(), padding=padding, groups=groups)
    return ours, theirs, bound, counted


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", HALF_TYPES, ids=str)
@pytest.mark.parametrize("images,channels,multiplier,size,kernel,padding", [
    (1, 2, 1, (16, 16), (13, 13), (6, 6)),     # one image: dw stored by the GEMM's blocks
    (3, 2, 1, (20, 23), (13, 13), (6, 6)),     # splits over images, rows not whole vectors
    (2, 2, 1, (34, 37), (31, 31), (15, 15)),   # RepLKNet's 31x31: four warps, two m-tiles
    (2, 2, 1, (14, 14), (27, 27), (13, 13)),   # RepLKNet's stage 3
    (2, 2, 2, (12, 16), (11, 13), (3, 7)),     # multiplier 2, unequal padding, 5 and 2 columns past Q's steps
    (2, 2, 1, (16, 48), (31, 17), (15, 0)),    # no column padding, Q = 32: whole steps
    (2, 2, 1, (8, 8), (11, 11), (12, 12)),     # padding past the filter: dy taller than x
], ids=str)
def test_large_filter_weight_gradient_matches_torch(images, channels, multiplier, size, kernel, padding, dtype, layout):
    x = torch.randn(images, channels, *size).to(dtype)
    weight_shape = (channels * multiplier, 1, *kernel)
    out = [size[i] + 2 * padding[i] - kernel[i] + 1 for i in range(2)]
    dy = torch.randn(images, channels * multiplier, *out).to(dtype)
    ours, theirs, bound, counted = weight_gradient(x, dy, weight_shape, padding, channels, layout)
    assert any(name.startswith(WGRAD_KERNEL) for name in counted), list(counted)
    eps = 2.0 ** -8 if dtype == torch.bfloat16 else 2.0 ** -11
    assert ((ours.double() - theirs).abs() <= 2 * eps * bound).all()


def test_large_filter_weight_gradient_runs_on_tensor_cores_only():
    """13x13 on a 32x32 plane, padding 6: the warps of filter rows 0-7 and 8-15 (those of 16-31 lie
    past the filter) multiply one m-tile (13 columns) over 2 steps of 16 output columns, at every
    input row whose 8 dy rows are not all outside dy (32 and 30 rows): 124 mma.m16n8k16 a plane,
    no FFMA, no bank conflicts."""
    x, dy = torch.randn(1, 2, 32, 32).bfloat16(), torch.randn(1, 2, 32, 32).bfloat16()
    _, _, _, counted = weight_gradient(x, dy, (2, 1, 13, 13), (6, 6), 2)
    assert list(counted) == [f"{WGRAD_KERNEL}<BFloat16>"]
    k = counted[f"{WGRAD_KERNEL}<BFloat16>"]
    assert k.mma_16816 == 2 * (32 + 30) * 2
    assert k.ffma == 0
    assert k.shared_bank_conflicts == 0


def test_large_filter_weight_gradient_non_finite_as_torch():
    """An Inf in x and a NaN in dy: the GEMM's zero rows and columns of dy would meet the Inf, and it
    skips x's padding, which torch multiplies by the NaN (every tap of that filter NaN): the images
    that stage one are summed tap by tap as torch sums them."""
    x, dy = torch.randn(2, 2, 16, 16).bfloat16(), torch.randn(2, 2, 16, 16).bfloat16()
    x[0, 0, 3, 4], dy[1, 1, 0, 0] = float("inf"), float("nan")
    ours, theirs, _, counted = weight_gradient(x, dy, (2, 1, 13, 13), (6, 6), 2)
    assert any(name.startswith(WGRAD_KERNEL) for name in counted)
    assert theirs[1].isnan().all() and theirs[0].isinf().any() and theirs[0].isfinite().any()
    assert_non_finite_where_torch_has_them(ours, theirs)


@pytest.mark.parametrize("dtype, kernel, kwargs", [
    (torch.bfloat16, 9, dict(padding=4)),              # 81 taps
    (torch.bfloat16, 13, dict(padding=6, stride=2)),   # strided
    (torch.bfloat16, 13, dict(padding=12, dilation=2)),
    (torch.bfloat16, 33, dict(padding=16)),            # past 32 rows and columns
    (torch.float32, 13, dict(padding=6)),
], ids=["9x9", "stride 2", "dilation 2", "33x33", "float32"])
def test_other_weight_gradients_keep_the_cuda_core_kernels(dtype, kernel, kwargs):
    x, w = torch.randn(1, 2, 20, 20).to(dtype), torch.randn(2, 1, kernel, kernel).to(dtype).requires_grad_()
    y = simt.conv2d(x, w, groups=2, **kwargs)
    with simt.counters() as counted:
        y.backward(torch.ones_like(y))
    assert counted and not any(name.startswith(WGRAD_KERNEL) for name in counted)
