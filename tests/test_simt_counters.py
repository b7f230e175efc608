"""convkernels.simt.counters() on the real kernels: exact counts where the kernel's tiling makes
them computable, plausible ones elsewhere. The planted patterns that prove each counter are in
tests/simt_emulator/counters.cuh (test_simt_emulator.py)."""
import pytest
import torch

simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built (no CUDA headers)")


def test_depthwise_fprop_counts():
    # One block: 4 planes of 8x8 outputs, 2 x 8 threads each computing kVec = 4 adjacent outputs.
    n, c, size, taps = 1, 4, 8, 3
    x = torch.randn(n, c, size, size)
    w = torch.randn(c, 1, taps, taps)
    with simt.counters() as counted:
        y = simt.conv2d(x, w, None, 1, 1, 1, c)
    assert torch.allclose(y, torch.nn.functional.conv2d(x, w, None, 1, 1, 1, c), atol=1e-5)
    assert list(counted) == ["depthwise_fprop_kernel<float>"]
    k = counted["depthwise_fprop_kernel<float>"]
    assert k.launches == 1
    assert k.barriers == 2  # one band of filter rows: staged, then consumed
    # Each output takes R filter rows of S taps: none on the padding of a row to kVec = 4.
    assert k.ffma == n * c * size * size * taps * taps
    assert k.dfma == k.mma_1688 == k.mma_16816 == 0
    assert k.global_store_requests > 0 and k.global_load_requests > 0
    assert 1 <= k.sectors_per_request <= 32
    # Shared loads are 128-bit fragments: 4 wavefronts a request at least.
    assert k.shared_load_wavefronts >= 4 * k.shared_load_requests > 0


def test_tf32_gemm_counts_its_mmas():
    # The channels_last GEMM on 64 output pixels x 32 channels takes its 64x64 tile (the 128x64 one
    # would multiply twice the padding): 4 warps of 32 x 32, of which the 2 of columns 32-63 (past
    # the 32 outputs) multiply nothing and the others 2 x 4 mma.m16n8k8 per 8 of k, over
    # K = C*R*S = 288, staged 16 floats a k-step.
    x = torch.randn(1, 32, 8, 8)
    w = torch.randn(32, 32, 3, 3)
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    try:
        with simt.counters() as counted:
            simt.conv2d(x, w, None, 1, 1)
    finally:
        torch.backends.cudnn.allow_tf32 = saved
    (name, k), = counted.items()
    assert name.startswith("channels_last_igemm_kernel<float, TileShape<64, 64, 32, 32, 4>, WarpMma<")
    k_steps = 288 // 16
    assert k.mma_1688 == 2 * (2 * 4) * 2 * k_steps
    assert k.ffma == k.mma_16816 == 0
    # One barrier a k-step, one before the epilogue reuses the stages, two per staged band of 16
    # rows of each warp's 32.
    assert k.barriers == k_steps + 1 + 2 * (32 // 16)


def test_float64_gemm_counts_its_dfmas():
    x = torch.randn(1, 8, 4, 4, dtype=torch.float64)
    w = torch.randn(8, 8, 1, 1, dtype=torch.float64)
    with simt.counters() as counted:
        simt.conv2d(x, w)
    (name, k), = counted.items()
    # The CUDA-core GEMM's 64x64 tile (4 warps of 32 x 32), one k-step of 8 doubles; the 16 pixels
    # and 8 filters fill part of it: the 2 warps of columns 32-63 multiply nothing, but every lane
    # of the other 2 computes its whole warp tile.
    assert name.startswith("channels_last_igemm_kernel<double, TileShape<64, 64, 32, 32, 4>, CudaCoreMma<")
    assert k.dfma == 2 * 32 * 32 * 8 and k.ffma == 0
    assert k.barriers == 1 + 1 + 2 * (32 // 16)


def test_the_gemm_takes_the_largest_tile_that_does_not_mostly_multiply_padding():
    """A tile per problem from the table (nhwc_igemm/tile_shape.cuh): the first, largest first, whose
    GEMM rounded up to whole tiles is within 1.25x of the least any tile gives."""
    def tile_of(pixels, channels_out):
        x = torch.randn(1, 16, 1, pixels).to(torch.bfloat16)
        w = torch.randn(channels_out, 16, 1, 1).to(torch.bfloat16)
        with simt.counters() as counted:
            simt.conv2d(x, w)
        (name,) = counted
        return name.split("TileShape<")[1].split(",")[:2]
    assert tile_of(256, 128) == ["128", " 128"]   # every tile pads nothing: the largest
    assert tile_of(256, 64) == ["128", " 64"]     # 128x128 would double N
    assert tile_of(64, 64) == ["64", " 64"]       # 128 rows would double M
    assert tile_of(200, 128) == ["128", " 128"]   # 256 padded rows against 256 for 64-row tiles: equal


def test_nothing_is_counted_outside_a_session_and_sessions_do_not_nest():
    x, w = torch.randn(1, 2, 4, 4), torch.randn(2, 1, 3, 3)
    simt.conv2d(x, w, None, 1, 1, 1, 2)
    with simt.counters() as outer:
        with pytest.raises(RuntimeError, match="already active"):
            with simt.counters():
                pass
    assert outer == {}
    with simt.counters() as again:
        simt.conv2d(x, w, None, 1, 1, 1, 2)
    assert again["depthwise_fprop_kernel<float>"].launches == 1


def test_a_session_from_another_thread_is_refused_while_one_is_active():
    import threading

    errors = []

    def begin_elsewhere():
        try:
            with simt.counters():
                pass
        except RuntimeError as error:
            errors.append(str(error))

    with simt.counters():
        thread = threading.Thread(target=begin_elsewhere)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "cannot be nested or run concurrently" in errors[0]


def test_derived_ratios():
    k = simt.KernelCounters(global_load_requests=2, global_load_sectors=8, global_store_requests=1,
                            global_store_sectors=32, shared_load_requests=3, shared_load_wavefronts=6)
    assert k.sectors_per_request == 40 / 3
    assert k.wavefronts_per_request == 2
    assert simt.KernelCounters().sectors_per_request == 0
    assert (k + k).global_load_sectors == 16
    # Bulk copies are one thread's instruction, in no warp-wide request.
    assert (k + simt.KernelCounters(bulk_copies=1, bulk_copy_sectors=4)).sectors_per_request == 40 / 3


def test_the_model_floor_counts_the_sectors_of_bulk_copies():
    """A kernel that loads its operands by TMA reads them in bulk copies, not requests: the model's
    traffic (bench/simt_model.py) includes their sectors."""
    from bench.simt_model import BANDWIDTH, CASES, SECTOR_BYTES, floors

    sectors = 10 ** 6  # no FMA issued: the traffic sets the floor
    model, _ = floors(CASES[0], simt.KernelCounters(bulk_copies=1, bulk_copy_sectors=sectors), (1, 32, 8, 8))
    assert model == sectors * SECTOR_BYTES / BANDWIDTH
