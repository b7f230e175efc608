"""The CUDA kernels keep everything in registers: ptxas reports no spills and no stack frame for
any kernel. Reads the report that `make build` keeps from the last build that compiled CUDA."""
import pathlib
import re

import pytest

REPORT = pathlib.Path(__file__).resolve().parent.parent / "build" / "ptxas.log"


def _kernels():
    """(kernel, 'N bytes stack frame, ...' line) for every kernel the report names."""
    if not REPORT.exists():
        return []
    kernels, name = [], None
    for line in REPORT.read_text().splitlines():
        if "Compiling entry function" in line:
            name = re.search(r"'([^']+)'", line).group(1)
        elif "bytes stack frame" in line:
            kernels.append((name, line))
    return kernels


@pytest.mark.skipif(not REPORT.exists(), reason="no CUDA build report (build/ptxas.log): CUDA was not compiled")
def test_no_kernel_spills_registers_or_uses_a_stack_frame():
    lines = _kernels()
    assert lines, f"{REPORT} names no kernels"
    offenders = [(k, l) for k, l in lines
                 if not re.search(r"\b0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads", l)]
    assert not offenders, "\n".join(f"{k}: {l}" for k, l in offenders)
