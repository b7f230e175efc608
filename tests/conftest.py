import os
import zlib

import pytest
import torch

from conv_reference import tf32_allowed

# Fresh random data every run; the seed is printed so a failure can be replayed with
# CONVKERNELS_TEST_SEED=<seed>.
SEED = int(os.environ.get("CONVKERNELS_TEST_SEED", int.from_bytes(os.urandom(4), "little")))


def pytest_report_header(config):
    return f"convkernels test seed: {SEED} (replay with CONVKERNELS_TEST_SEED={SEED})"


@pytest.fixture(autouse=True)
def _seed_per_test(request):
    torch.manual_seed(SEED ^ zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def allow_tf32(request):
    """torch.backends.cudnn.allow_tf32, which float32 convolutions on tensor cores follow, set to
    the test's parameter (parametrize it with indirect=True) and restored after the test."""
    with tf32_allowed(request.param):
        yield request.param
