"""The channels_last depthwise kernels (csrc/cuda/depthwise_nhwc: 16-byte channel vectors), run by
the SIMT emulator. At the full vector width the forward and the input gradient take the staged
kernel (the source patch and the filter taps of a block staged in shared memory once, a run of
outputs per thread with a sliding window over them; a strided input gradient as one correlation
per stride phase, all phases of a tile from one dy patch); huge dilations, more than 32 stride
phases and single elements take the register-run kernels (the same thread tiles, read from global
memory); the weight gradient is staged in shared memory, split over positions and summed in
a fixed order. Channels_last depthwise convolutions take them in every pass without a relayout
(NCHW ones keep the NCHW kernels), the full vector width where the channels and pointers allow it
and single elements elsewhere; they match torch in float64 over the edges (filter sizes up to
13x13, stride, dilation, padding none and past the filter's reach, multiplier 2 with and without
the fused channel shuffle, channel counts off the vector width, channel groups of 1-8 vectors whose
blocks span tiles and images, several images, a misaligned input, all four dtypes,
conv_transpose2d, grids split past the launch limits, a weight gradient of several splits); and on
an aligned shape every global request moves whole 16-byte lanes, the staged kernel and the weight
gradient read x (dy) and the filter once for all taps, without bank conflicts. (An empty batch
never reaches a kernel: conv_ops.cpp returns first.)"""
import contextlib

import pytest
import torch
import torch.nn.functional as F

from conv_reference import ConvCase, _assert_close, assert_matches_torch

simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built (no CUDA headers)")

CL = torch.channels_last
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
# Channels in a 16-byte vector, by dtype.
FULL_WIDTH = {torch.float64: 2, torch.float32: 4, torch.float16: 8, torch.bfloat16: 8}
CPP_TYPE = {torch.float64: "double", torch.float32: "float", torch.float16: "Half",
            torch.bfloat16: "BFloat16"}


def depthwise(channels, kernel, multiplier=1, batch=1, size=(6, 6), bias=True, **kwargs):
    return ConvCase(False, (batch, channels, *size), (channels * multiplier, 1, *kernel), bias=bias,
                    kwargs=dict(groups=channels, **kwargs))


def kernels_of(fn):
    with simt.counters() as launched:
        fn()
    return set(launched)


def passes_of(case, x):
    """{pass: kernel names} of the case's forward on `x` and of each gradient on its own (autograd
    computes the gradient of every leaf that requires one: each gradient gets its own forward)."""
    w = torch.randn(case.weight_shape).to(x.dtype)

    def gradient(leaf):
        inputs = [x.detach().requires_grad_(leaf == 0), w.detach().requires_grad_(leaf == 1)]
        y = case.ours(simt)(*inputs, **case.kwargs)
        return kernels_of(lambda: torch.autograd.grad(y, inputs[leaf], torch.ones_like(y)))

    fprop = kernels_of(lambda: case.ours(simt)(x, w, **case.kwargs))
    return {"fprop": fprop, "dgrad": gradient(0), "wgrad": gradient(1)}


def nhwc_kernels(dtype, width, transposed=False):
    """The kernel names of each pass, at this channel vector width: the staged kernel for the
    forward correlation and the input gradient at the full width."""
    t = CPP_TYPE[dtype]
    staged = f"depthwise_nhwc_staged_kernel<{t}>"
    fprop = staged if width > 1 else f"depthwise_nhwc_fprop_kernel<{t}, {width}>"
    dgrad = staged if width > 1 else f"depthwise_nhwc_dgrad_kernel<{t}, {width}>"
    if transposed:
        fprop, dgrad = dgrad, fprop
    wgrad = {f"depthwise_nhwc_wgrad_kernel<{t}, {width}>", f"depthwise_nhwc_wgrad_reduce_kernel<{t}>"}
    return {"fprop": {fprop}, "dgrad": {dgrad}, "wgrad": wgrad}


def misaligned(t):
    """t's values, channels_last, in a storage that starts one element past an allocation: the
    data pointer is no longer 16-byte aligned."""
    storage = torch.empty(t.numel() + 1, dtype=t.dtype)
    view = storage[1:].as_strided(t.shape, t.contiguous(memory_format=CL).stride())
    view.copy_(t)
    return view


# --- routing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_channels_last_depthwise_takes_the_nhwc_kernels_at_full_width(dtype, stride):
    case = depthwise(16, (3, 3), padding=1, stride=stride)
    x = torch.randn(case.input_shape).to(dtype).contiguous(memory_format=CL)
    assert passes_of(case, x) == nhwc_kernels(dtype, FULL_WIDTH[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_conv_transpose2d_depthwise_takes_them_through_the_role_table(dtype):
    case = ConvCase(True, (1, 16, 5, 5), (16, 1, 3, 3), kwargs=dict(groups=16, stride=2, padding=1))
    x = torch.randn(case.input_shape).to(dtype).contiguous(memory_format=CL)
    assert passes_of(case, x) == nhwc_kernels(dtype, FULL_WIDTH[dtype], transposed=True)


def test_an_input_gradient_of_more_than_32_stride_phases_takes_the_register_run_kernel():
    """Stride 6: 36 phases of the smallest sub-tile are past the staged kernel's 256 threads."""
    case = depthwise(8, (3, 3), size=(14, 14), stride=6, padding=1)
    x = torch.randn(case.input_shape).contiguous(memory_format=CL)
    assert passes_of(case, x)["dgrad"] == {"depthwise_nhwc_dgrad_kernel<float, 4>"}
    assert_matches_torch(simt, case, torch.float32, memory_format=CL)


def test_a_patch_past_the_shared_budget_takes_the_register_run_kernels():
    """Dilation 15: the smallest sub-tile's patch (32 x 34 pixels of 128 bytes) passes the staged
    kernel's 128 KB."""
    case = depthwise(32, (3, 3), size=(32, 32), dilation=15)
    x = torch.randn(case.input_shape).contiguous(memory_format=CL)
    assert passes_of(case, x)["fprop"] == {"depthwise_nhwc_fprop_kernel<float, 4>"}
    assert_matches_torch(simt, case, torch.float32, memory_format=CL)


@pytest.mark.parametrize("channels,multiplier", [(13, 1), (8, 2)], ids=["13 channels", "multiplier 2"])
def test_what_a_vector_cannot_hold_takes_single_elements(channels, multiplier):
    case = depthwise(channels, (3, 3), multiplier=multiplier)
    x = torch.randn(case.input_shape).contiguous(memory_format=CL)
    assert passes_of(case, x) == nhwc_kernels(torch.float32, 1)


def test_a_misaligned_input_takes_single_elements_where_it_is_read():
    case = depthwise(8, (3, 3))
    passes = passes_of(case, misaligned(torch.randn(case.input_shape)))
    narrow, full = nhwc_kernels(torch.float32, 1), nhwc_kernels(torch.float32, 4)
    assert passes == {"fprop": narrow["fprop"], "dgrad": full["dgrad"], "wgrad": narrow["wgrad"]}


def test_nchw_depthwise_keeps_the_nchw_kernels():
    case = depthwise(16, (3, 3), padding=1)
    passes = passes_of(case, torch.randn(case.input_shape))
    assert passes == {"fprop": {"depthwise_fprop_kernel<float>"}, "dgrad": {"depthwise_dgrad_kernel<float, 1>"},
                      "wgrad": {"depthwise_wgrad_kernel<float>"}}


# --- correctness against torch ---------------------------------------------------------------

EDGES = [
    depthwise(8, (3, 3), batch=2, size=(6, 7), padding=1),
    depthwise(3, (5, 5), size=(9, 9), stride=2, padding=2),
    depthwise(16, (7, 7), size=(12, 12), dilation=2, padding=3),
    depthwise(8, (13, 13), size=(10, 10), padding=6, bias=False),
    depthwise(24, (3, 3), size=(5, 5), padding=4),             # taps that read only padding
    depthwise(13, (3, 3), size=(9, 8), stride=2, dilation=2),  # no padding, a scalar tail
    depthwise(3, (3, 3), multiplier=2, size=(7, 7), stride=2, padding=1),
    depthwise(8, (3, 5), multiplier=2, size=(5, 6), padding=(1, 2)),
    ConvCase(False, (1, 6, 5, 6), (12, 1, 3, 3), kwargs=dict(groups=6, padding=1), shuffled=True),
    ConvCase(True, (2, 8, 4, 5), (8, 1, 3, 3), kwargs=dict(groups=8, stride=2, padding=1, output_padding=1)),
    ConvCase(True, (1, 6, 5, 5), (6, 1, 3, 3), kwargs=dict(groups=3, dilation=2)),  # multiplier 2
    ConvCase(True, (1, 16, 4, 4), (16, 1, 5, 5), kwargs=dict(groups=16, stride=3, padding=2)),
    # The staged kernel's blocks of fewer than 8 vectors a sub-tile: 4 channels (one float32
    # vector: 8 sub-tiles over 3 images, 5 of them empty), 8 channels over a plane of 2 x 2
    # sub-tiles, 32 at stride 2 (4 bfloat16 vectors); an input gradient whose flipped padding is
    # negative, and one with output_padding at stride 1.
    depthwise(4, (3, 3), batch=3, size=(9, 10), padding=1),
    depthwise(8, (5, 3), size=(20, 21), padding=(2, 0), dilation=(1, 2)),
    depthwise(32, (3, 3), size=(11, 12), stride=2, padding=1),
    depthwise(16, (3, 3), size=(6, 7), padding=3),
    ConvCase(True, (1, 8, 5, 5), (8, 1, 3, 3), kwargs=dict(groups=8, dilation=2, output_padding=1)),
    # Strided input gradients in stride phases: strides unequal per axis on sizes they do not
    # divide; a 1x1 filter (three of four phases are the bias alone); an even filter (every phase
    # has taps, over 3 x 3 sub-tiles); dilation 2 at stride 2 (the odd phases read no tap); padding past the filter's
    # reach (phases of negative padding); stride 4 (16 phases, sub-tiles of 2x4 outputs each);
    # 8 sub-tiles a block over 3 images.
    depthwise(8, (3, 3), size=(13, 11), stride=(2, 3), padding=(1, 0)),
    depthwise(16, (1, 1), size=(9, 9), stride=2),
    depthwise(8, (4, 4), size=(34, 36), stride=2, padding=1),
    depthwise(8, (3, 3), size=(14, 13), stride=2, dilation=2, padding=2),
    depthwise(8, (5, 5), size=(7, 7), stride=2, padding=5),
    depthwise(16, (3, 3), size=(13, 14), stride=4, padding=1),
    depthwise(4, (3, 3), batch=3, size=(10, 9), stride=2, padding=1),
    # The weight gradient's blocks: a last channel group of 2 vectors in 8; a plane in 10 x 2
    # tiles (those of the last column partial) over 10 splits.
    depthwise(40, (3, 3), size=(5, 5), padding=1),
    depthwise(32, (3, 3), size=(40, 40), padding=1),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", EDGES, ids=str)
def test_matches_torch_at_the_edges(case, dtype):
    assert_matches_torch(simt, case, dtype, memory_format=CL)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_a_misaligned_input_matches_torch(dtype):
    case = depthwise(16, (3, 3), stride=2, padding=1)
    x64 = torch.randn(case.input_shape, dtype=torch.float64)
    w64 = torch.randn(case.weight_shape, dtype=torch.float64)
    x = misaligned(x64.to(dtype)).requires_grad_()
    w = w64.to(dtype).requires_grad_()
    y = simt.conv2d(x, w, stride=2, padding=1, groups=16)
    dy = torch.randn(y.shape, dtype=torch.float64).to(dtype).contiguous(memory_format=CL)
    got = (y, *torch.autograd.grad(y, (x, w), dy))

    def reference(x, w, dy):
        x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
        y = F.conv2d(x, w, stride=2, padding=1, groups=16)
        return (y, *torch.autograd.grad(y, (x, w), dy))

    want = reference(x.double(), w.double(), dy.double())
    bounds = reference(x.double().abs(), w.double().abs(), dy.double().abs())
    for name, g, e, bound in zip(("output", "grad_input", "grad_weight"), got, want, bounds):
        _assert_close(g, e, bound, dtype, f"misaligned {name}", False)


@contextlib.contextmanager
def max_grid(x, y, z):
    previous = torch.ops.convkernels_simt.set_max_grid([x, y, z])
    try:
        yield
    finally:
        torch.ops.convkernels_simt.set_max_grid(previous)


def test_grids_past_the_launch_limits_are_split():
    # 4 images of one tile each: the weight gradient's reduction is 2 splits of 2 (wgrad_split.h).
    with max_grid(1, 1, 1):
        assert_matches_torch(simt, depthwise(8, (3, 3), batch=4, size=(12, 12), padding=1), memory_format=CL)


# --- counters on an aligned shape ------------------------------------------------------------

def aligned_passes():
    """256 bfloat16 channels (a warp's 32 lanes x 8 channels = 512 contiguous bytes of one pixel), a
    3x3 filter without padding on 10x10: 8x8 outputs, in runs of 4 that no edge masks."""
    x = torch.randn(1, 256, 10, 10).to(torch.bfloat16).contiguous(memory_format=CL)
    w = torch.randn(256, 1, 3, 3).to(torch.bfloat16)
    b = torch.randn(256).to(torch.bfloat16)
    dy = torch.randn(1, 256, 8, 8).to(torch.bfloat16).contiguous(memory_format=CL)
    conv2d_weight = torch.ops.convkernels_simt.conv2d_weight
    passes = {}
    for name, fn in [("fprop", lambda: simt.conv2d(x, w, b, groups=256)),
                     ("dgrad", lambda: simt.conv_transpose2d(dy, w, groups=256)),
                     ("wgrad", lambda: conv2d_weight(x, dy, w.shape, [1, 1], [0, 0], [1, 1], 256))]:
        with simt.counters() as launched:
            fn()
        passes[name] = launched
    return passes


STAGED = "depthwise_nhwc_staged_kernel<BFloat16>"


# fprop: 8 warps (4 blocks of 64 threads) load the bias; the input gradient has none, and its 10
# output columns are computed in runs of 4: 12.
@pytest.mark.parametrize("pass_name,pixels_read,pixels_written,bias_sectors,computed",
                         [("fprop", 100, 64, 8 * 4, 8 * 8), ("dgrad", 64, 100, 0, 10 * 12)])
def test_the_staged_kernel_reads_its_source_and_filter_once(pass_name, pixels_read, pixels_written, bias_sectors,
                                                            computed):
    """Four blocks, one a group of 8 channel vectors (a 128-byte shared-memory line of a pixel),
    stage the source pixels (x; dy for the input gradient) and the 9 taps once, 512 bytes (16 whole
    sectors) over the four a pixel or tap, and store each output pixel once; each warp loads its
    channels' bias (128 bytes, 4 sectors). Shared reads have no bank conflicts, and each (output,
    tap) pair of the computed outputs is multiplied once."""
    k = aligned_passes()[pass_name][STAGED]
    assert k.global_load_sectors == (pixels_read + 9) * 16 + bias_sectors
    assert k.global_store_sectors == pixels_written * 16
    assert k.shared_bank_conflicts == 0
    assert k.ffma == computed * 256 * 9


def test_a_strided_input_gradient_reads_dy_once_for_all_phases_and_skips_the_inserted_zeros():
    """conv_transpose2d at stride 2 of an 8x8 dy (256 bfloat16 channels) to 16x16 through a 3x3
    filter: the four stride phases of an 8x8 tile each, one block a group of 8 channel vectors,
    read dy's 64 pixels and the 9 taps once (16 sectors each over the four blocks), store each of
    dx's 256 pixels once, and multiply each (dy pixel, tap) pair once: the 1, 2, 2 and 4 taps of
    the phases, no product with an inserted zero."""
    dy = torch.randn(1, 256, 8, 8).to(torch.bfloat16).contiguous(memory_format=CL)
    w = torch.randn(256, 1, 3, 3).to(torch.bfloat16)
    with simt.counters() as launched:
        simt.conv_transpose2d(dy, w, stride=2, padding=1, output_padding=1, groups=256)
    k = launched[STAGED]
    assert k.global_load_sectors == (64 + 9) * 16
    assert k.global_store_sectors == 256 * 16
    assert k.ffma == 64 * 9 * 256
    assert k.shared_bank_conflicts == 0


def test_the_staged_forward_reads_each_patch_row_once_and_slides_along_it():
    """A thread's 2 x 4 output tile spans 4 patch rows, read once each, 4 + 2 pixels a row (the
    window slides: not 4 x 3); the 6 (patch row, output row) pairs take 3 filter taps each. Per
    warp: 4 x 6 + 6 x 3 shared loads, and the 2 x 4 global stores."""
    k = aligned_passes()["fprop"][STAGED]
    warps = 4 * 2  # 4 channel groups x 64 threads (4 row tiles x 2 runs x 8 slots)
    assert k.shared_load_requests == warps * (4 * 6 + 6 * 3)
    assert k.global_store_requests == warps * 2 * 4


@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2), (3, 2)])
@pytest.mark.parametrize("channels", [4, 8, 16], ids=lambda c: f"{c // 4} vectors")
def test_sub_tiles_of_fewer_vectors_share_lines_without_bank_conflicts(channels, stride, dilation):
    """Groups of 1, 2 or 4 float32 vectors: a staged line holds the same pixel of 8, 4 or 2
    sub-tiles, so a quarter-warp reads one line whatever the stride and dilation."""
    x = torch.randn(2, channels, 14, 13).contiguous(memory_format=CL)
    w = torch.randn(channels, 1, 3, 3)
    with simt.counters() as launched:
        simt.conv2d(x, w, stride=stride, padding=1, dilation=dilation, groups=channels)
    assert launched["depthwise_nhwc_staged_kernel<float>"].shared_bank_conflicts == 0


def test_the_weight_gradient_stages_x_and_dy_once_for_all_taps():
    """One block a group of 8 channel vectors (a 128-byte shared-memory line of a pixel) stages the
    whole 10x10 x patch and the 8x8 dy tile once, 16 bytes a lane: 100 + 64 pixels of 512 bytes, 16
    sectors each, for all 9 taps; its shared-memory reads have no bank conflicts; it multiplies
    each (position, tap) pair once; it stores its 9 x 256 float partial sums once, 16 bytes a lane."""
    k = aligned_passes()["wgrad"]["depthwise_nhwc_wgrad_kernel<BFloat16, 8>"]
    assert k.global_load_sectors == (100 + 64) * 16
    assert k.shared_bank_conflicts == 0
    assert k.ffma == 64 * 256 * 9
    assert k.global_store_sectors == 9 * 256 * 4 // 32


@pytest.mark.parametrize("stride,dilation", [(2, 1), (3, 1), (2, 2), (1, 2)])
@pytest.mark.parametrize("dtype,channels", [(torch.float32, 16), (torch.bfloat16, 16), (torch.bfloat16, 32)],
                         ids=["float32 x 4 vectors", "bfloat16 x 2 vectors", "bfloat16 x 4 vectors"])
def test_the_weight_gradient_reads_groups_of_fewer_vectors_without_bank_conflicts(dtype, channels, stride,
                                                                                  dilation):
    """Where a block's channel vectors are less than a 128-byte line, a quarter-warp reads the
    same vectors of consecutive positions: the x patch keeps its columns grouped by stride phase,
    so those positions' pixels, `stride` apart in x, are adjacent in shared memory."""
    x = torch.randn(2, channels, 17, 16).to(dtype).contiguous(memory_format=CL)
    geometry = dict(stride=stride, padding=1, dilation=dilation, groups=channels)
    dy_shape = F.conv2d(x.double(), torch.ones(channels, 1, 3, 3, dtype=torch.float64), **geometry).shape
    dy = torch.randn(dy_shape).to(dtype).contiguous(memory_format=CL)
    with simt.counters() as launched:
        dw = torch.ops.convkernels_simt.conv2d_weight(x, dy, (channels, 1, 3, 3), [stride] * 2, [1, 1],
                                                      [dilation] * 2, channels)
    kernel = f"depthwise_nhwc_wgrad_kernel<{CPP_TYPE[dtype]}, {FULL_WIDTH[dtype]}>"
    assert launched[kernel].shared_bank_conflicts == 0

    def weight_gradient(x, dy):
        return torch.nn.grad.conv2d_weight(x.double(), (channels, 1, 3, 3), dy.double(), **geometry)

    _assert_close(dw, weight_gradient(x, dy), weight_gradient(x.abs(), dy.abs()), dtype, "dw")


def test_the_weight_gradient_reduction_writes_dw_in_whole_sectors():
    """Where the reduction over positions is split (a 38x38 dy: several splits), the reduce kernel
    reads the partial sums along their rows and writes dw, whose taps of a channel are adjacent,
    through a transpose in shared memory: the 32 x 9 float sums in 36 sectors, once each (a thread
    a sum wrote them at a stride of 9 values: 288), without bank conflicts."""
    x = torch.randn(1, 32, 40, 40).contiguous(memory_format=CL)
    dy = torch.randn(1, 32, 38, 38).contiguous(memory_format=CL)
    with simt.counters() as launched:
        torch.ops.convkernels_simt.conv2d_weight(x, dy, (32, 1, 3, 3), [1, 1], [0, 0], [1, 1], 32)
    k = launched["depthwise_nhwc_wgrad_reduce_kernel<float>"]
    assert k.global_store_sectors == 32 * 9 * 4 // 32
    assert k.shared_bank_conflicts == 0



@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_filters_the_staged_kernel_cannot_hold_go_through_the_nchw_kernels(dtype):
    """float32 and float64 filters of 100 taps and more whose forward tile the staged kernel cannot
    hold (31x31 at 8 channels) take the NCHW kernels in every pass, between two relayouts: the
    register-run kernels would read every tap's pixels from global memory. 17x17 keeps the staged
    NHWC kernels. Both as torch."""
    large = depthwise(8, (31, 31), size=(33, 34), padding=15)
    x = torch.randn(large.input_shape).to(dtype).contiguous(memory_format=CL)
    t = CPP_TYPE[dtype]
    nchw = {"fprop": {f"depthwise_fprop_kernel<{t}>"}, "dgrad": {f"depthwise_dgrad_kernel<{t}, 1>"},
            "wgrad": {f"depthwise_wgrad_kernel<{t}>"}}
    assert passes_of(large, x) == nchw
    assert_matches_torch(simt, large, dtype=dtype, memory_format=CL)
    smaller = depthwise(8, (17, 17), size=(20, 20), padding=8)
    x = torch.randn(smaller.input_shape).to(dtype).contiguous(memory_format=CL)
    assert passes_of(smaller, x) == nhwc_kernels(dtype, FULL_WIDTH[dtype])
