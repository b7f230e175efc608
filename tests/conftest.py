import os
import zlib

import pytest
import torch

# Fresh random data every run; the seed is printed so a failure can be replayed with
# CONVKERNELS_TEST_SEED=<seed>.
SEED = int(os.environ.get("CONVKERNELS_TEST_SEED", int.from_bytes(os.urandom(4), "little")))


def pytest_report_header(config):
    return f"convkernels test seed: {SEED} (replay with CONVKERNELS_TEST_SEED={SEED})"


@pytest.fixture(autouse=True)
def _seed_per_test(request):
    torch.manual_seed(SEED ^ zlib.crc32(request.node.nodeid.encode()))
