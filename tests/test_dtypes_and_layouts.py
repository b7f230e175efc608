"""Low-precision dtypes, memory formats and non-contiguous inputs give torch's results."""
import pytest
import torch

import convkernels
from conv_grid import grid
from conv_reference import assert_matches_torch

CASES = grid(12, transposed=False, seed=11) + grid(12, transposed=True, seed=12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_low_precision_matches_float64_reference(case, dtype):
    """Half types accumulate in float32: the error is the output rounding, not the sum length."""
    assert_matches_torch(convkernels, case, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_channels_last_gives_torch_values_and_format(case, dtype):
    assert_matches_torch(convkernels, case, dtype=dtype, memory_format=torch.channels_last)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_non_contiguous_inputs(case):
    assert_matches_torch(convkernels, case, noncontiguous=True)


def test_channels_last_weight_alone_gives_channels_last_output():
    x = torch.randn(2, 4, 9, 9)
    w = torch.randn(6, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    y = convkernels.conv2d(x, w)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, w))


def test_float16_output_keeps_input_dtype():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float16)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float16)
    assert convkernels.conv2d(x, w).dtype == torch.float16
    assert convkernels.conv_transpose2d(x, w.transpose(0, 1).contiguous()).dtype == torch.float16
