"""Indexing stays correct for tensors of more than 2^31 elements (a 32-bit offset would wrap).

One float16 image of 46341 x 46341 = 2^31 + 4825 elements (4.3 GB); a convolution with a row
stride of 46340 reads only its first and last rows, so the check is cheap in time, not in memory.
The rows read hold random values; everything else is zero.
"""
import pytest
import torch
import torch.nn.functional as F

import convkernels

SIDE = 46341
ARGS = dict(stride=(SIDE - 1, 1), padding=(0, 1))
pytestmark = pytest.mark.large_memory


@pytest.fixture(scope="module")
def image():
    x = torch.zeros(1, 1, SIDE, SIDE, dtype=torch.float16)
    assert x.numel() > 2 ** 31
    x[0, 0, 0] = torch.randn(SIDE, dtype=torch.float16)
    x[0, 0, -1] = torch.randn(SIDE, dtype=torch.float16)
    return x


def _rows_read(x):
    """The two rows the strided convolution reads, as a float64 image of height SIDE - 1 + 1."""
    return x[:, :, ::SIDE - 1].double()


def _implementations():
    impls = [pytest.param(convkernels, id="cpu")]
    try:
        import convkernels.simt as simt
        impls.append(pytest.param(simt, id="simt"))
    except ImportError:
        pass
    return impls


@pytest.mark.parametrize("impl", _implementations())
def test_forward_and_weight_gradient_read_past_2_to_the_31(image, impl):
    w = torch.randn(1, 1, 1, 3, dtype=torch.float16)
    y = impl.conv2d(image, w, **ARGS)
    expected = F.conv2d(_rows_read(image), w.double(), padding=(0, 1))
    assert y.shape == expected.shape == (1, 1, 2, SIDE)
    torch.testing.assert_close(y.double(), expected, rtol=2e-3, atol=2e-3)

    grad_output = torch.randn(1, 1, 2, SIDE, dtype=torch.float16)
    ops = torch.ops.convkernels_simt if impl is not convkernels else torch.ops.convkernels
    grad_weight = ops.conv2d_weight(image, grad_output, [1, 1, 1, 3], list(ARGS["stride"]), [0, 1], [1, 1], 1)
    expected = torch.nn.grad.conv2d_weight(_rows_read(image), [1, 1, 1, 3], grad_output.double(), padding=(0, 1))
    torch.testing.assert_close(grad_weight.double(), expected, rtol=1e-2, atol=1e-2 * expected.abs().max().item())


def test_input_gradient_writes_past_2_to_the_31():
    """dgrad (conv_transpose2d) writes every element of a 2^31+ element result."""
    w = torch.randn(1, 1, 1, 3, dtype=torch.float16)
    rows = torch.randn(1, 1, 2, SIDE, dtype=torch.float16)
    dx = convkernels.conv_transpose2d(rows, w, **ARGS)
    assert dx.shape == (1, 1, SIDE, SIDE)
    expected = F.conv_transpose2d(rows.double(), w.double(), padding=(0, 1))  # the two rows, adjacent
    torch.testing.assert_close(dx[:, :, ::SIDE - 1].double(), expected, rtol=2e-3, atol=2e-3)
    assert not dx[0, 0, 1:-1].any(), "rows that no output maps to must be zero"
