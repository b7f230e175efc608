"""The CUDA kernels on a real GPU: results equal torch.nn.functional and our CPU kernels, float32
runs in TF32 when torch's does, gradients check numerically, the ops pass opcheck, and they honour
streams and CUDA graphs. Skipped where no GPU is visible (the SIMT-emulated tests in test_simt.py
run the same kernels on the CPU)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convkernels
from conv_grid import SHUFFLED, full_grid, grid
from conv_reference import ConvCase, assert_matches_torch, assert_tf32_follows_allow_tf32, tf32_allowed

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")

CASES = full_grid(transposed=False)[:80] + full_grid(transposed=True)[:80]
LARGE = [
    ConvCase(False, (4, 64, 56, 56), (64, 64, 3, 3), kwargs=dict(padding=1)),
    ConvCase(False, (4, 128, 28, 28), (128, 4, 3, 3), kwargs=dict(padding=1, groups=32)),
    ConvCase(False, (2, 96, 56, 56), (96, 1, 7, 7), kwargs=dict(padding=3, groups=96)),
    ConvCase(False, (2, 64, 32, 32), (64, 1, 31, 31), kwargs=dict(padding=15, groups=64)),
    ConvCase(False, (4, 64, 56, 56), (256, 64, 1, 1)),
    ConvCase(True, (4, 128, 28, 28), (128, 64, 2, 2), kwargs=dict(stride=2)),
]


@pytest.mark.parametrize("case", CASES + LARGE + SHUFFLED, ids=str)
def test_matches_torch_in_float64(case):
    assert_matches_torch(convkernels, case, device="cuda")


@pytest.mark.parametrize("allow_tf32", [False], indirect=True)  # float32 in float32; TF32 below
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", grid(16, False, seed=31) + grid(16, True, seed=32) + LARGE, ids=str)
def test_low_precision(case, dtype, allow_tf32):
    assert_matches_torch(convkernels, case, dtype=dtype, device="cuda")


def _needs_tf32_tensor_cores():
    if torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("TF32 tensor cores need sm_80 or later")


# torch's default (torch.backends.cudnn.allow_tf32): float32 convolutions in TF32 on sm_80+. Ours
# and torch's own (cuDNN) meet the same TF32 bound against float64, on the same data.
@pytest.mark.parametrize("allow_tf32", [True], indirect=True)
@pytest.mark.parametrize("impl", [convkernels, F], ids=["ours", "torch"])
@pytest.mark.parametrize("case", grid(8, False, seed=34) + grid(8, True, seed=35) + LARGE, ids=str)
def test_float32_in_tf32_like_torch(case, impl, allow_tf32):
    _needs_tf32_tensor_cores()
    assert_matches_torch(impl, case, dtype=torch.float32, device="cuda", tf32=True)


@pytest.mark.parametrize("case", [LARGE[0], LARGE[4], LARGE[5]], ids=str)
def test_tf32_follows_allow_tf32_and_rounds_ties_away(case):
    _needs_tf32_tensor_cores()
    assert_tf32_follows_allow_tf32(convkernels, case, device="cuda")


@pytest.mark.parametrize("case", grid(12, False, seed=33) + LARGE, ids=str)
def test_channels_last(case):
    assert_matches_torch(convkernels, case, memory_format=torch.channels_last, device="cuda")


# Large half-type depthwise filters run on tensor cores (depthwise_mma.cuh, and for the weight
# gradient depthwise_mma_wgrad.cuh), channels_last through a relayout: the 31x31 case and a 13x13
# conv_transpose2d (the input-gradient kernel as a forward).
LARGE_DEPTHWISE = [LARGE[3], ConvCase(True, (2, 32, 40, 40), (32, 1, 13, 13), kwargs=dict(padding=6, groups=32))]


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last],
                         ids=["NCHW", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", LARGE_DEPTHWISE, ids=str)
def test_large_depthwise_filters_in_half_types(case, dtype, memory_format):
    assert_matches_torch(convkernels, case, dtype=dtype, memory_format=memory_format, device="cuda")


# Shapes that an H100 or H200 multiplies on the warp-specialised TMA kernel in half types and TF32
# (test_tma_igemm.py): boxes past the output, groups with a part-padding channel chunk, a
# transposed forward with its stride phases, and the 128x256 tile over many tiles a block; the
# same shapes with CONVKERNELS_TMA=0 on the cp.async kernels they replace.
TMA_SHAPES = [
    ConvCase(False, (2, 96, 9, 10), (80, 48, 3, 3), kwargs=dict(groups=2, stride=2, padding=1)),
    ConvCase(False, (3, 32, 7, 7), (32, 32, 3, 3), kwargs=dict(padding=1)),
    ConvCase(True, (2, 32, 6, 7), (32, 40, 3, 3), kwargs=dict(stride=2, padding=1)),
    ConvCase(False, (8, 256, 14, 14), (256, 256, 3, 3), kwargs=dict(padding=1)),
]


@pytest.mark.parametrize("tma", ["1", "0"], ids=["tma", "cp_async"])
@pytest.mark.parametrize("dtype,tf32", [(torch.bfloat16, False), (torch.float16, False), (torch.float32, True)],
                         ids=["bfloat16", "float16", "tf32"])
@pytest.mark.parametrize("case", TMA_SHAPES, ids=str)
def test_tma_and_cp_async_gemms_on_tensor_cores(case, dtype, tf32, tma, monkeypatch):
    monkeypatch.setenv("CONVKERNELS_TMA", tma)
    with tf32_allowed(tf32):
        assert_matches_torch(convkernels, case, dtype=dtype, memory_format=torch.channels_last, device="cuda",
                             tf32=tf32)


def test_cuda_equals_our_cpu_kernels():
    x = torch.randn(2, 16, 20, 20, dtype=torch.float64)
    w = torch.randn(32, 4, 3, 3, dtype=torch.float64)
    on_gpu = convkernels.conv2d(x.cuda(), w.cuda(), padding=1, groups=4).cpu()
    torch.testing.assert_close(on_gpu, convkernels.conv2d(x, w, padding=1, groups=4), rtol=1e-12, atol=1e-12)


def test_gradcheck_and_gradgradcheck():
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64, device="cuda", requires_grad=True)
    w = torch.randn(6, 2, 3, 2, dtype=torch.float64, device="cuda", requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, device="cuda", requires_grad=True)
    fn = lambda x, w, b: convkernels.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d", "conv2d_weight"])
def test_opcheck(name):
    d = "cuda"
    args = {
        "conv2d": (torch.randn(2, 4, 7, 6, device=d), torch.randn(6, 2, 3, 3, device=d), torch.randn(6, device=d),
                   [2, 1], [1, 0], [1, 2], 2),
        "conv_transpose2d": (torch.randn(1, 4, 5, 5, device=d), torch.randn(4, 3, 3, 3, device=d),
                             torch.randn(6, device=d), [2, 2], [1, 1], [1, 0], 2, [1, 1]),
        "conv2d_weight": (torch.randn(2, 4, 7, 6, device=d), torch.randn(2, 6, 4, 2, device=d), [6, 2, 3, 3],
                          [2, 2], [1, 0], [1, 1], 2),
    }[name]
    args = [a.requires_grad_() if isinstance(a, torch.Tensor) else a for a in args]
    torch.library.opcheck(getattr(torch.ops.convkernels, name), args)


@pytest.mark.parametrize("allow_tf32", [False], indirect=True)
def test_runs_on_the_current_stream(allow_tf32):
    x = torch.randn(8, 32, 64, 64, device="cuda")
    w = torch.randn(32, 1, 7, 7, device="cuda")
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        y = convkernels.conv2d(x, w, padding=3, groups=32)
    stream.synchronize()
    torch.testing.assert_close(y, F.conv2d(x, w, padding=3, groups=32), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("allow_tf32", [False], indirect=True)
def test_cuda_graph_capture_and_replay(allow_tf32):
    x = torch.randn(2, 16, 16, 16, device="cuda")
    w = torch.randn(16, 16, 3, 3, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        convkernels.conv2d(x, w, padding=1)  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = convkernels.conv2d(x, w, padding=1)
    x.copy_(torch.randn_like(x))
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(y, F.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("allow_tf32", [False], indirect=True)
def test_converted_model_training_step_replays_in_a_cuda_graph(allow_tf32):
    """A whole training step of a converted model (forward, backward, optimizer) captures into one
    CUDA graph, which fails on a host synchronisation or an allocation outside torch's caching
    allocator; its replays train exactly as the same steps run eagerly."""
    def model():
        torch.manual_seed(0)
        layers = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                               nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Conv2d(16, 8, 1), nn.ReLU(),
                               nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ConvTranspose2d(8, 4, 2, stride=2))
        return convkernels.convert(layers).cuda()

    captured, eager = model(), model()
    batches = [(torch.randn(2, 3, 16, 16, device="cuda"), torch.randn(2, 4, 16, 16, device="cuda"))
               for _ in range(5)]

    def step(net, optimizer, x, target):
        optimizer.zero_grad(set_to_none=False)
        F.mse_loss(net(x), target).backward()
        optimizer.step()

    eager_optimizer = torch.optim.SGD(eager.parameters(), lr=0.1)
    for x, target in batches[1:]:
        step(eager, eager_optimizer, x, target)

    optimizer = torch.optim.SGD(captured.parameters(), lr=0.1)
    x, target = (t.clone() for t in batches[0])
    side = torch.cuda.Stream()   # warm-up on a side stream, as torch's capture recipe does: it
    side.wait_stream(torch.cuda.current_stream())   # allocates the .grad tensors the graph reuses
    with torch.cuda.stream(side):
        step(captured, torch.optim.SGD(captured.parameters(), lr=0.0), x, target)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(captured, optimizer, x, target)
    for batch_x, batch_target in batches[1:]:
        x.copy_(batch_x)
        target.copy_(batch_target)
        graph.replay()
    torch.cuda.synchronize()
    for ours, theirs in zip(captured.parameters(), eager.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_weight_gradient_is_deterministic():
    torch.use_deterministic_algorithms(True)
    try:
        x = torch.randn(8, 32, 28, 28, device="cuda")
        gy = torch.randn(8, 32, 28, 28, device="cuda")
        runs = [torch.ops.convkernels.conv2d_weight(x, gy, [32, 8, 3, 3], [1, 1], [1, 1], [1, 1], 4) for _ in range(3)]
    finally:
        torch.use_deterministic_algorithms(False)
    assert all(torch.equal(runs[0], r) for r in runs[1:])


def test_different_devices_are_rejected():
    with pytest.raises(RuntimeError, match="same device"):
        convkernels.conv2d(torch.randn(1, 2, 5, 5, device="cuda"), torch.randn(2, 2, 3, 3))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_autocast_runs_in_the_autocast_dtype_like_torch(dtype):
    x = torch.randn(2, 8, 16, 16, device="cuda")
    w = torch.randn(8, 8, 3, 3, device="cuda")
    with torch.autocast("cuda", dtype=dtype):
        ours = convkernels.conv2d(x, w, padding=1)
        theirs = F.conv2d(x, w, padding=1)
    assert ours.dtype == theirs.dtype == dtype
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=2e-2, atol=5e-2)


def test_indexing_past_2_to_the_31():
    """A strided convolution reading the last rows of a 2^31+ element float16 image."""
    side = 46341
    x = torch.zeros(1, 1, side, side, dtype=torch.float16, device="cuda")
    x[0, 0, -1] = torch.randn(side, dtype=torch.float16, device="cuda")
    w = torch.randn(1, 1, 1, 3, dtype=torch.float16, device="cuda")
    y = convkernels.conv2d(x, w, stride=(side - 1, 1), padding=(0, 1))
    expected = F.conv2d(x[:, :, ::side - 1].double().cpu(), w.double().cpu(), padding=(0, 1))
    torch.testing.assert_close(y.double().cpu(), expected, rtol=2e-3, atol=2e-3)
