"""CPU timings without first-touch page faults: glibc's malloc is told to keep what is freed.

Under glibc's defaults a block of more than 32 MiB (a large convolution's output) is a fresh
mmap on every call, and writing it costs a page fault per 4 KiB page; smaller blocks come from
memory already mapped or not, depending on the heap's history. On the 2-core CPU this doubled the
time of some cases (a UNet transposed forward: 24 ms with faults, 12 without), for whichever side
the heap happened not to serve, so ratios flipped from run to run. With mmap off and the heap
never trimmed, after warm-up both sides write memory that is already mapped, and their times are
the kernels'. Extra memory is not measured on CPU, so keeping freed memory costs no figure.
"""
import ctypes
import ctypes.util

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory():
    """Tell this process's malloc to serve large blocks from the heap and never return freed memory
    to the system. True where it took (glibc); False elsewhere (times then include page faults)."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
