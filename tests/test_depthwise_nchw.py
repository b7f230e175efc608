"""The NCHW depthwise kernels (csrc/cuda/depthwise_{fprop,dgrad,wgrad}.cuh), run by the SIMT
emulator: their staging moves whole 16-byte vectors where a plane's rows are whole aligned vectors
and single elements elsewhere (depthwise_staging.cuh), their correlations issue no multiply-add on
a tap that does not exist, and they store a thread's outputs as one vector where they are adjacent
and aligned, rows that are not whole vectors through shared memory (whole small planes as one run
a block); the weight gradient reads x and dy once for all the filter rows. They match torch in
float64 over the edges of that: every column offset of the tile against the vectors (padding 0 to
3; half types have 8 to a vector), rows of whole vectors or not, rows longer than a warp's
vectors, strided rows (element by element in fprop, vectors in dgrad), an input gradient at
stride 2 (both column phases a thread) and 3 (one), dilation, multiplier 2, whole 7x7 planes over
several blocks (their channels shuffled or not), a misaligned input, all four dtypes,
conv_transpose2d; and on an aligned shape the counters show 16-byte loads, no bank conflict and
only the useful multiply-adds."""
import pytest
import torch
import torch.nn.functional as F

from conv_reference import ConvCase, _assert_close, assert_matches_torch

simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built (no CUDA headers)")

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def depthwise(channels, kernel, multiplier=1, batch=1, size=(6, 6), bias=True, **kwargs):
    return ConvCase(False, (batch, channels, *size), (channels * multiplier, 1, *kernel), bias=bias,
                    kwargs=dict(groups=channels, **kwargs))


EDGES = [
    depthwise(2, (3, 3), size=(5, 16), padding=0),
    depthwise(2, (3, 3), batch=2, size=(6, 16), padding=1),
    depthwise(2, (5, 5), size=(7, 16), padding=2),
    depthwise(2, (7, 7), size=(8, 16), padding=3),
    depthwise(3, (3, 3), size=(5, 13), padding=1),              # rows that are not whole vectors
    depthwise(2, (3, 3), size=(70, 13), padding=1),             # ... in two tiles of whole rows
    depthwise(2, (3, 3), size=(4, 12), padding=1),              # whole vectors but for half types
    depthwise(2, (3, 3), size=(12, 12), padding=1),             # half types: 2 rows a warp, 4 threads idle
    depthwise(2, (3, 5), size=(2, 136), padding=(1, 2)),        # two tiles a row, > 32 vectors
    depthwise(2, (5, 5), size=(9, 16), stride=2, padding=2),
    depthwise(2, (3, 3), size=(7, 11), stride=2, padding=1),    # dx rows not whole vectors
    depthwise(2, (3, 3), size=(6, 12), stride=(1, 2), padding=1),
    depthwise(2, (3, 3), size=(6, 12), stride=(2, 1), padding=1),
    depthwise(2, (3, 3), size=(9, 14), stride=3, dilation=(1, 2), padding=2),  # a phase a slice
    depthwise(2, (3, 3), multiplier=2, size=(8, 16), stride=2, padding=1),
    depthwise(2, (3, 3), size=(8, 16), dilation=2, padding=2),
    depthwise(2, (3, 3), multiplier=2, size=(6, 8), padding=1, bias=False),
    depthwise(20, (3, 3), batch=2, size=(7, 7), padding=1),  # whole planes, a run of 16 a block, the last block's 8
    depthwise(3, (3, 3), multiplier=2, batch=2, size=(7, 7), padding=1),
    ConvCase(False, (1, 6, 7, 7), (12, 1, 3, 3), kwargs=dict(groups=6, padding=1), shuffled=True),  # planes apart in y
    ConvCase(True, (1, 2, 5, 8), (2, 1, 3, 3), kwargs=dict(groups=2, stride=2, padding=1, output_padding=1)),
    ConvCase(True, (1, 2, 6, 16), (2, 1, 5, 5), kwargs=dict(groups=2, padding=2)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", EDGES, ids=str)
def test_matches_torch_at_the_edges(case, dtype):
    assert_matches_torch(simt, case, dtype)


# The weight gradient's blocks (depthwise_wgrad.cuh): several planes a block, the last block's
# slices partly past the planes; the reduction over (n, tile) pairs split across blocks and the
# splits summed in order (batches, planes taller than a tile, at multiplier 2, strided and dilated);
# a filter too wide for one block's threads, its rows split over blocks.
WGRAD_BLOCKS = [
    depthwise(10, (3, 3), size=(6, 6), padding=1),
    depthwise(2, (3, 3), batch=4, size=(6, 8), padding=1),
    depthwise(2, (3, 3), batch=3, size=(70, 16), padding=1),
    depthwise(2, (3, 3), multiplier=2, batch=4, size=(6, 8), padding=1, bias=False),
    depthwise(2, (5, 3), batch=4, size=(9, 16), stride=2, dilation=(1, 2), padding=2),
    depthwise(2, (9, 120), size=(9, 120), padding=0),
    depthwise(2, (7, 7), batch=2, size=(16, 16), padding=3),  # lanes a quarter-warp apart, threads between idle
    depthwise(3, (11, 11), size=(14, 14), padding=5),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16], ids=str)
@pytest.mark.parametrize("case", WGRAD_BLOCKS, ids=str)
def test_the_weight_gradient_matches_torch_over_its_blocks_and_splits(case, dtype):
    assert_matches_torch(simt, case, dtype)


def misaligned(t):
    """t's values in a storage that starts one element past an allocation: no row is aligned."""
    storage = torch.empty(t.numel() + 1, dtype=t.dtype)
    view = storage[1:].view(t.shape)
    view.copy_(t)
    return view


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_a_misaligned_input_matches_torch(dtype):
    x64 = torch.randn(1, 2, 6, 16, dtype=torch.float64)
    w64 = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    x = misaligned(x64.to(dtype)).requires_grad_()
    w = w64.to(dtype).requires_grad_()
    y = simt.conv2d(x, w, padding=1, groups=2)
    dy = torch.randn(y.shape, dtype=torch.float64).to(dtype)
    got = (y, *torch.autograd.grad(y, (x, w), dy))

    def reference(x, w, dy):
        x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
        y = F.conv2d(x, w, padding=1, groups=2)
        return (y, *torch.autograd.grad(y, (x, w), dy))

    want = reference(x.double(), w.double(), dy.double())
    bounds = reference(x.double().abs(), w.double().abs(), dy.double().abs())
    for name, g, e, bound in zip(("output", "grad_input", "grad_weight"), got, want, bounds):
        _assert_close(g, e, bound, dtype, f"misaligned {name}", False)


def aligned_counts():
    """{pass: KernelCounters} of a 3x3 float32 depthwise convolution on 8 planes of 16x16."""
    x, w = torch.randn(1, 8, 16, 16), torch.randn(8, 1, 3, 3)
    dy = torch.randn(1, 8, 16, 16)
    conv2d_weight = torch.ops.convkernels_simt.conv2d_weight
    counts = {}
    for name, fn in [("fprop", lambda: simt.conv2d(x, w, None, 1, 1, 1, 8)),
                     ("dgrad", lambda: simt.conv_transpose2d(dy, w, None, 1, 1, 0, 8)),
                     ("wgrad", lambda: conv2d_weight(x, dy, w.shape, [1, 1], [1, 1], [1, 1], 8))]:
        with simt.counters() as counted:
            fn()
        (counts[name],) = counted.values()
    return counts


def test_aligned_rows_stage_in_16_byte_vectors_without_bank_conflicts():
    counts = aligned_counts()
    for name in ("fprop", "dgrad"):
        k = counts[name]
        assert k.shared_bank_conflicts == 0, name
        # Only the multiply-adds of the 9 taps of each output: none on padding taps.
        assert k.ffma == 8 * 16 * 16 * 9, name
        # x once: a plane's 16 rows of 16 floats are 64 whole 16-byte vectors, 2 warp requests of
        # 16 sectors (element by element would take 8 requests); the halo rows lie outside the
        # plane and are not read. Besides, one request of the 9 filter taps a plane.
        assert k.global_load_requests == 8 * (2 + 1), name
        assert 8 * 16 * 2 <= k.global_load_sectors <= 8 * (16 * 2 + 4), name
        # Each thread's 4 outputs in one 16-byte store: every output sector written once.
        assert k.global_store_sectors == 8 * 16 * 16 * 4 // 32, name
        assert k.global_store_requests == 8 * 2, name



@pytest.mark.parametrize("kernel", [3, 7])
def test_float64_fragments_meet_no_bank_conflict(kernel):
    """A float64 thread's 4 staged values are 32 bytes, two 16-byte loads at a 32-byte lane stride:
    the lanes of a quarter-warp load their halves in opposite orders, so neither load conflicts."""
    x = torch.randn(1, 32, 16, 16, dtype=torch.float64)
    w = torch.randn(32, 1, kernel, kernel, dtype=torch.float64)
    dy = torch.randn(1, 32, 16, 16, dtype=torch.float64)
    for fn in (lambda: simt.conv2d(x, w, None, 1, kernel // 2, 1, 32),
               lambda: simt.conv_transpose2d(dy, w, None, 1, kernel // 2, 0, 32)):
        with simt.counters() as counted:
            fn()
        (counts,) = counted.values()
        assert counts.shared_bank_conflicts == 0


@pytest.mark.parametrize("size", [28, 56])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_type_rows_are_staged_at_a_pitch_that_keeps_thread_rows_apart(size, dtype):
    """7 or 14 threads a row of outputs: the next thread row must start 112 bytes on (mod 128) from
    the row before for a quarter-warp's fragments to meet 8 bank groups, a pitch of 28 mod 32
    floats, not a whole number of the source's 16-byte vectors (8 values). MobileNet's 28x28
    layers in bfloat16 took 2304 conflicts in 7248 wavefronts on 16 planes with a pitch of whole
    vectors."""
    x, w = torch.randn(2, 16, size, size).to(dtype), torch.randn(16, 1, 3, 3).to(dtype)
    for conv in ("conv2d", "conv_transpose2d"):  # fprop, and dgrad's correlation with the flipped filter
        with simt.counters() as counted:
            out = getattr(simt, conv)(x, w, None, 1, 1, groups=16)
        (counts,) = counted.values()
        assert counts.shared_bank_conflicts == 0, conv
        reference = getattr(F, conv)
        _assert_close(out, reference(x.double(), w.double(), None, 1, 1, groups=16),
                      reference(x.double().abs(), w.double().abs(), None, 1, 1, groups=16), dtype, conv)


def test_the_weight_gradient_reads_x_and_dy_once_without_bank_conflicts():
    k = aligned_counts()["wgrad"]
    assert k.shared_bank_conflicts == 0
    # Only the multiply-adds of the 9 taps: none on the filter row's padding tap.
    assert k.ffma == 8 * 16 * 16 * 9
    # Every filter row from one staging of a plane's x, each in 16-byte vectors: x and dy are 64
    # sectors a plane, 5 warp requests; a few sectors besides where a request ends inside one, or
    # where the emulator groups a lane's vector with another lane's next (a lane skips the vectors
    # of the halo, that lie outside the plane).
    assert k.global_load_requests == 8 * 5
    assert 8 * 64 <= k.global_load_sectors <= 8 * 76
    # dw once: the 9 taps of a plane.
    assert k.global_store_requests == 8


@pytest.mark.parametrize("size", [56, 112])
def test_the_weight_gradient_of_wide_planes_meets_no_bank_conflict(size):
    """A 64-wide tile is 4 segments of 16 positions a row, two pairs 32 values apart that no pitch
    keeps off each other's banks: adjacent lanes take adjacent rows of a segment instead, which the
    row pitch separates (MobileNet's 3x3 layers at 112x112 and 56x56: 38944 and 8528 conflicts
    before, on 8 planes)."""
    x, w = torch.randn(1, 8, size, size), torch.randn(8, 1, 3, 3)
    with simt.counters() as counted:
        torch.ops.convkernels_simt.conv2d_weight(x, torch.randn(1, 8, size, size), w.shape, [1, 1], [1, 1],
                                                 [1, 1], 8)
    assert counted["depthwise_wgrad_kernel<float>"].shared_bank_conflicts == 0


def test_short_rows_are_staged_several_to_a_warp_request():
    """A 7x7 weight gradient stages, per plane, 9 x rows of 12 items (an 8-wide tile and 4 taps)
    and 7 dy rows of 8, element by element (28-byte rows are not whole 16-byte vectors). A whole
    warp staged each row: 448 load requests, 784 sectors and 768 shared store wavefronts on 32
    planes. Groups of 16 and 8 lanes now stage 2 x rows or 4 dy rows a request: the 7 x rows in
    the plane take 4 requests, the dy rows 2, and a request reads the sector its rows share once.
    The rows' pitches are chosen for these stores as well as the loads: no two rows of a request
    meet in a bank."""
    x, dy = torch.randn(1, 32, 7, 7), torch.randn(1, 32, 7, 7)
    with simt.counters() as counted:
        dw = torch.ops.convkernels_simt.conv2d_weight(x, dy, [32, 1, 3, 3], [1, 1], [1, 1], [1, 1], 32)
    want = torch.nn.grad.conv2d_weight(x.double(), [32, 1, 3, 3], dy.double(), padding=1, groups=32)
    torch.testing.assert_close(dw.double(), want, rtol=1e-5, atol=1e-5)
    k = counted["depthwise_wgrad_kernel<float>"]
    assert k.global_load_requests == 32 * (4 + 2)
    assert k.global_load_sectors <= 560  # 392 compulsory
    assert k.shared_store_wavefronts <= 480
    assert k.shared_bank_conflicts == 0


@pytest.mark.parametrize("size,kernel", [(8, 3), (16, 3), (32, 13)])
def test_a_float64_weight_gradient_sums_its_lanes_without_bank_conflicts(size, kernel):
    """A float64 slot's 4 partial sums are 32 bytes, stored for the lanes' sum as two 16-byte halves
    in the order of the correlations' loads: lanes 4-7 of each quarter-warp store their second
    half first, so that each store's 8 halves meet 8 bank groups (one 32-byte store a lane: 512
    conflicts on 32 7x7 planes)."""
    x, dy = torch.randn(1, 8, size, size, dtype=torch.float64), torch.randn(1, 8, size, size, dtype=torch.float64)
    with simt.counters() as counted:
        dw = torch.ops.convkernels_simt.conv2d_weight(x, dy, [8, 1, kernel, kernel], [1, 1], [kernel // 2] * 2,
                                                      [1, 1], 8)
    want = torch.nn.grad.conv2d_weight(x, [8, 1, kernel, kernel], dy, padding=kernel // 2, groups=8)
    torch.testing.assert_close(dw, want, rtol=1e-12, atol=1e-12)
    assert counted["depthwise_wgrad_kernel<double>"].shared_bank_conflicts == 0


@pytest.mark.parametrize("kernel", [5, 7, 17])
def test_the_weight_gradient_of_large_filters_meets_no_bank_conflict(kernel):
    """A lane's slots (4 taps of a filter row each) read x rows a pitch apart, and a quarter-warp
    may hold the slots of two lanes, at two tile rows: the x pitch is the one with the fewest
    conflicts (5x5 and 17x17 at 32x32: 3160 and 26440 conflicts on 8 planes with the first
    pitch), and where even that one has some, lanes start a quarter-warp apart (7x7: 14 slots a
    lane, 4400 conflicts before)."""
    x, w = torch.randn(1, 8, 32, 32), torch.randn(8, 1, kernel, kernel)
    dy = torch.randn(1, 8, 32, 32)
    with simt.counters() as counted:
        dw = torch.ops.convkernels_simt.conv2d_weight(x, dy, w.shape, [1, 1], [kernel // 2] * 2, [1, 1], 8)
    want = torch.nn.grad.conv2d_weight(x.double(), w.shape, dy.double(), padding=kernel // 2, groups=8)
    torch.testing.assert_close(dw.double(), want, rtol=1e-4, atol=1e-3)
    k = counted["depthwise_wgrad_kernel<float>"]
    assert k.shared_bank_conflicts == 0
    assert k.ffma == 8 * 32 * 32 * kernel * kernel  # the idle threads multiply nothing


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_a_strided_weight_gradient_stages_and_reads_x_without_bank_conflicts(dtype):
    """At stride 2, x's rows are staged element by element into 2 phases: the phases' pitch keeps a
    warp's stores apart (16 values mod 32), and the rows take a pitch of their own for the loads
    (one pitch for both: 1312 conflicts in float32 on these 32 planes)."""
    x, w = torch.randn(1, 32, 32, 32).to(dtype), torch.randn(32, 1, 3, 3).to(dtype)
    dy = torch.randn(1, 32, 16, 16).to(dtype)
    with simt.counters() as counted:
        torch.ops.convkernels_simt.conv2d_weight(x, dy, w.shape, [2, 2], [1, 1], [1, 1], 32)
    (k,) = counted.values()
    assert k.shared_bank_conflicts == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("pass_name,stride", [("fprop", 1), ("dgrad", 1), ("dgrad", 2)])
def test_small_slices_that_share_a_warp_stage_without_bank_conflicts(pass_name, stride, dtype):
    """8x8 outputs are 16 threads a plane: two planes' slices share a warp. A warp's lanes stage
    their vectors in an order rotated by lane, and slices lie a pitch apart that keeps both
    slices' element-by-element stores apart (272 conflicts at stride 1, 416 in the stride-2 input
    gradient, on 32 planes). (The stride-2 forward keeps 16, where two slices' filter taps meet.)"""
    x, w = torch.randn(1, 32, 8 * stride, 8 * stride).to(dtype), torch.randn(32, 1, 3, 3).to(dtype)
    dy = torch.randn(1, 32, 8, 8).to(dtype)
    with simt.counters() as counted:
        if pass_name == "fprop":
            simt.conv2d(x, w, None, stride, 1, 1, 32)
        else:
            simt.conv_transpose2d(dy, w, None, stride, 1, stride - 1, 32)
    (k,) = counted.values()
    assert k.shared_bank_conflicts == 0


def test_a_strided_input_gradient_stores_rows_that_are_not_whole_vectors_through_shared_memory():
    """At stride 2 a slice computes one row phase of a 14x14 dx plane, a thread 8 adjacent values of
    both column phases (two 16-byte pieces, which the lanes store in an order rotated by lane, so
    that a quarter-warp's pieces meet 8 bank groups): its 7 rows of 56 bytes, 2 rows apart, are
    stored with adjacent lanes on adjacent values, a whole row a pass of the slice's 16 threads, so
    that no request ends inside a second row: with both phases' slices in a warp, a request is 112
    contiguous bytes. One by one they took 4660 sectors on 32 planes (784 compulsory); with
    14-thread slices and pieces in order, 1012 bank conflicts."""
    dy, w = torch.randn(1, 32, 7, 7), torch.randn(32, 1, 3, 3)
    with simt.counters() as counted:
        dx = simt.conv_transpose2d(dy, w, None, 2, 1, 1, 32)
    want = F.conv_transpose2d(dy.double(), w.double(), None, 2, 1, 1, 32)
    torch.testing.assert_close(dx.double(), want, rtol=1e-5, atol=1e-5)
    (k,) = counted.values()
    compulsory = 32 * 14 * 14 * 4 // 32
    assert compulsory <= k.global_store_sectors <= compulsory + k.global_store_requests
    assert k.shared_bank_conflicts == 0


@pytest.mark.parametrize("kernel", [3, 5])
def test_rows_stored_by_run_are_read_back_without_bank_conflicts(kernel):
    """A 28x28 bfloat16 dx at stride 2: a slice is a row phase, 14 rows of 28 values read back in
    passes of its 56 threads. The staged rows take the pitch (60 values, its pieces stored in order,
    not rotated) at which a warp's values that span two rows fall in distinct banks, and the slices
    the distance at which a warp's lanes of two slices do (392 conflicts on 16 planes before, the
    pitch chosen for the staging stores alone)."""
    dy, w = torch.randn(1, 16, 14, 14).to(torch.bfloat16), torch.randn(16, 1, kernel, kernel).to(torch.bfloat16)
    with simt.counters() as counted:
        dx = simt.conv_transpose2d(dy, w, None, 2, kernel // 2, 1, 16)
    (k,) = counted.values()
    assert k.shared_bank_conflicts == 0
    geometry = dict(stride=2, padding=kernel // 2, output_padding=1, groups=16)
    _assert_close(dx, F.conv_transpose2d(dy.double(), w.double(), **geometry),
                  F.conv_transpose2d(dy.double().abs(), w.double().abs(), **geometry), torch.bfloat16, "dx")


@pytest.mark.parametrize("case,dtype,most_sectors", [
    ("dgrad 14->28", torch.float32, 16 * 28 * 5),  # each 112-byte row on at most 5 sectors; 4032 before
    ("dgrad 7->14", torch.float64, 16 * 14 * 14 * 8 // 32),  # 2240 before
    ("fprop 14", torch.float64, 16 * 14 * 14 * 8 // 32),  # 1568 before
    ("fprop 28", torch.bfloat16, 16 * 28 * 28 * 2 // 32),  # 1120 before: requests 196 values apart
], ids=lambda v: str(v).removeprefix("torch."))
def test_rows_that_end_inside_a_thread_are_stored_by_run(case, dtype, most_sectors):
    """Rows that are whole vectors but whose last thread has fewer outputs than the others (28
    float32 dx values of both column phases, 8 a thread; 14 float64 values, 4 a thread) are stored
    through shared memory, adjacent lanes on adjacent values, where store_outputs stored the last
    thread's values one by one; a block's planes stored as one run are walked by whole warps, so
    that each request writes whole aligned sectors."""
    pass_name, sizes = case.split()
    size = int(sizes.split("->")[0])
    x, w = torch.randn(1, 16, size, size).to(dtype), torch.randn(16, 1, 3, 3).to(dtype)
    if pass_name == "fprop":
        geometry, conv, reference = dict(stride=1, padding=1, groups=16), simt.conv2d, F.conv2d
    else:
        geometry = dict(stride=2, padding=1, output_padding=1, groups=16)
        conv, reference = simt.conv_transpose2d, F.conv_transpose2d
    with simt.counters() as counted:
        out = conv(x, w, None, **geometry)
    (k,) = counted.values()
    assert out.numel() * out.element_size() // 32 <= k.global_store_sectors <= most_sectors
    _assert_close(out, reference(x.double(), w.double(), None, **geometry),
                  reference(x.double().abs(), w.double().abs(), None, **geometry), dtype, case)


@pytest.mark.parametrize("pass_name", ["fprop", "dgrad"])
def test_whole_planes_whose_rows_are_not_whole_vectors_are_stored_as_one_run_a_block(pass_name):
    """A 7x7 plane is one tile of 16 threads (the last of its 8 rows of outputs past the plane), its
    rows 28 bytes, and a block computes 16 planes, consecutive in memory: the slices stage their
    outputs in shared memory, then the block's 256 threads store all its planes as one run,
    adjacent lanes on adjacent values: 25 warp requests of up to 32 floats a block, each sector
    once (16 planes are 98 whole sectors). A thread's 4 floats one by one touched each sector up
    to 4 times (826 sectors on 32 planes), each slice storing its own plane as a run 345."""
    x, w = torch.randn(1, 32, 7, 7), torch.randn(32, 1, 3, 3)
    with simt.counters() as counted:
        if pass_name == "fprop":
            out = simt.conv2d(x, w, None, 1, 1, 1, 32)
            want = F.conv2d(x.double(), w.double(), None, 1, 1, 1, 32)
        else:
            out = simt.conv_transpose2d(x, w, None, 1, 1, 0, 32)
            want = F.conv_transpose2d(x.double(), w.double(), None, 1, 1, 0, 32)
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)
    (k,) = counted.values()
    assert k.global_store_requests == 25 + 25
    assert k.global_store_sectors == 32 * 7 * 7 * 4 // 32


@pytest.mark.parametrize("pass_name", ["fprop", "dgrad"])
def test_small_slices_are_a_power_of_two_threads_so_that_none_straddles_a_quarter_warp(pass_name):
    """7x7 outputs are 14 threads a plane; slices of 14 start inside quarter-warps, where their
    staging stores and fragment loads met the neighbouring slice's banks (231 conflicts on 32
    planes). An 8th row of outputs, past the plane, makes slices of 16: the staging, the filter
    and the correlations meet no conflict, and only the run's reads across padded rows keep some
    (48)."""
    x, w = torch.randn(1, 32, 7, 7), torch.randn(32, 1, 3, 3)
    with simt.counters() as counted:
        if pass_name == "fprop":
            simt.conv2d(x, w, None, 1, 1, 1, 32)
        else:
            simt.conv_transpose2d(x, w, None, 1, 1, 0, 32)
    (k,) = counted.values()
    assert k.shared_bank_conflicts <= 48


def test_strided_rows_are_read_once():
    """A stride-2 forward stages its rows in 2 phases, element by element: adjacent lanes load
    adjacent columns, so x's 1024 sectors (32 planes of 16x16 floats) are read once, with at most
    3 sectors a plane of filter taps besides (loading a phase at a time read each sector twice:
    2096)."""
    x, w = torch.randn(1, 32, 16, 16), torch.randn(32, 1, 3, 3)
    with simt.counters() as counted:
        simt.conv2d(x, w, None, 2, 1, 1, 32)
    assert counted["depthwise_fprop_kernel<float>"].global_load_sectors <= 1024 + 32 * 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("height,width", [(128, 16), (32, 64)], ids=["narrow", "wide"])
def test_a_strided_forward_stages_and_reads_its_phases_without_bank_conflicts(height, width, kernel, dtype):
    """A stride-2 row is staged element by element, lane i into phase i % 2: the phases' pitch puts
    phase 1 16 banks from phase 0 (wide planes: a warp's 32 stores in one row). Thread rows read
    rows 2 apart, 4 phase pitches (a multiple of 16 values): rows take a pitch of their own, a
    fragment longer, so that a quarter-warp's 16-byte reads of 4 rows x 2 fragments fall in
    distinct banks (narrow planes: outputs 8 wide, 2 threads a row; 3x3 on 16x16 had 2304 read
    conflicts in 3456 wavefronts before). 4 planes, a warp a staged row."""
    x, w = torch.randn(1, 4, height, width).to(dtype), torch.randn(4, 1, kernel, kernel).to(dtype)
    with simt.counters() as counted:
        simt.conv2d(x, w, None, 2, kernel // 2, 1, 4)
    k = counted[f"depthwise_fprop_kernel<{'float' if dtype == torch.float32 else 'BFloat16'}>"]
    assert k.shared_load_wavefronts == 4 * k.shared_load_requests
    assert k.shared_bank_conflicts == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
def test_rows_of_threads_that_would_split_a_quarter_warp_are_widened(dtype):
    """28 outputs at stride 2 (a 56x56 plane, MobileNet's third downsampling) are 7 threads a row:
    a quarter-warp's 8 lanes span two thread rows, 2 staged rows apart, and no pitch of whole
    fragments parts their 16-byte loads (4608 bank conflicts in 13648 wavefronts on 16 float32
    planes). Rows of 8 threads, the last one's outputs past the plane, load without conflicts:
    the same 7 warps a plane, 21% fewer shared wavefronts."""
    x, w = torch.randn(1, 4, 56, 56).to(dtype), torch.randn(4, 1, 3, 3).to(dtype)
    with simt.counters() as counted:
        y = simt.conv2d(x, w, None, 2, 1, 1, 4)
    geometry = dict(stride=2, padding=1, groups=4)
    _assert_close(y, F.conv2d(x.double(), w.double(), **geometry),
                  F.conv2d(x.double().abs(), w.double().abs(), **geometry), dtype, "y")
    (k,) = counted.values()
    assert k.shared_bank_conflicts == 0


def test_an_input_gradient_at_stride_2_stores_whole_sectors():
    """At stride 2 a thread computes both column phases of its dx row: its 8 outputs are adjacent,
    32 bytes, and pairs of lanes exchange halves so that each 16-byte store instruction writes
    whole sectors: dx's 4096 sectors (32 planes of 32x32 floats) are written once (a phase a
    thread, 8 times over; a thread its own two halves, twice). dy is staged once for both column
    phases, so read once per row phase, with at most 4 sectors of taps a plane."""
    dy, w = torch.randn(1, 32, 16, 16), torch.randn(32, 1, 3, 3)
    with simt.counters() as counted:
        dx = simt.conv_transpose2d(dy, w, None, 2, 1, 1, 32)
    assert dx.shape == (1, 32, 32, 32)
    k = counted["depthwise_dgrad_kernel<float, 2>"]
    assert k.global_store_sectors == 4096
    assert k.global_load_sectors <= 2 * 1024 + 32 * 4
    assert k.shared_bank_conflicts == 0


def test_float64_outputs_store_whole_sectors():
    """A thread's 4 float64 outputs are two 16-byte stores: lanes exchange them so that each store
    instruction writes whole sectors, y's 32 planes of 16x16 doubles (2048 sectors) once."""
    x, w = torch.randn(1, 32, 16, 16, dtype=torch.float64), torch.randn(32, 1, 3, 3, dtype=torch.float64)
    with simt.counters() as counted:
        y = simt.conv2d(x, w, None, 1, 1, 1, 32)
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, w, None, 1, 1, 1, 32))
    assert counted["depthwise_fprop_kernel<double>"].global_store_sectors == 2048
