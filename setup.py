"""Builds convkernels._C: the C++ kernels, and the CUDA kernels when a CUDA toolchain is present.

Environment switches:
  CONVKERNELS_CUDA=auto|1|0   build the CUDA sources when nvcc and a CUDA build of torch are
                              present (auto, the default), always (1: fail if impossible) or never.
  TORCH_CUDA_ARCH_LIST        GPU targets; defaults to the visible GPU, or 9.0 with none visible.
  MAX_JOBS                    parallel compile jobs (torch.utils.cpp_extension honours it).
  CONVKERNELS_DEBUG=1         -O0 -g, for gdb and sanitizers.
"""
import glob
import os
import sysconfig

from setuptools import setup
import torch
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))


def want_cuda():
    mode = os.environ.get("CONVKERNELS_CUDA", "auto").lower()
    possible = torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None
    if mode in ("0", "off", "false", "no"):
        return False
    if mode in ("1", "on", "true", "yes"):
        if not possible:
            raise RuntimeError(
                "CONVKERNELS_CUDA=1 but no CUDA toolchain: torch.version.cuda="
                f"{torch.version.cuda}, CUDA_HOME={cpp_extension.CUDA_HOME}")
        return True
    return possible


def pip_cuda_includes():
    """CUDA headers that pip's nvidia-* wheels install beside torch (cuda_runtime.h, cuda_fp16.h)."""
    site = sysconfig.get_paths()["purelib"]
    return sorted(glob.glob(os.path.join(site, "nvidia", "cu*", "include")))


def cuda_library_dirs():
    """Where libcudart.so lies: CUDAExtension links it, but a CUDA_HOME inferred from an nvcc on
    PATH (/usr/local/bin/nvcc gives /usr/local) may not hold it."""
    candidates = [os.path.join(cpp_extension.CUDA_HOME, "lib64"), "/usr/local/cuda/lib64"]
    return [d for d in candidates if os.path.exists(os.path.join(d, "libcudart.so"))][:1]


def sources(pattern):
    return sorted(glob.glob(os.path.join("csrc", pattern)))


def extension():
    debug = os.environ.get("CONVKERNELS_DEBUG") == "1"
    opt = ["-O0", "-g"] if debug else ["-O3"]
    # -fopenmp: at::parallel_for only runs in parallel in code compiled with OpenMP (torch ships
    # libgomp). -march=native: the extension is always built on the machine that runs it, and the
    # CPU kernels are written for the vector width the compiler finds there (AVX2 or AVX-512).
    cxx = opt + ["-fopenmp", "-march=native", "-Wall", "-Wno-unknown-pragmas"]
    link = ["-fopenmp"]
    srcs = sources("*.cpp") + sources("cpu/*.cpp")
    cuda = want_cuda()
    if not cuda:
        return cpp_extension.CppExtension(
            "convkernels._C", srcs, extra_compile_args={"cxx": cxx}, extra_link_args=link)

    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        # No GPU to ask: compile for Hopper, the GPU this project targets.
        os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0"
    nvcc = opt + ["--expt-relaxed-constexpr", "-Xptxas=-v", "-lineinfo"]
    return cpp_extension.CUDAExtension(
        "convkernels._C",
        srcs + sources("cuda/*.cu"),
        include_dirs=pip_cuda_includes(),
        library_dirs=cuda_library_dirs(),
        define_macros=[("CONVKERNELS_WITH_CUDA", None)],
        extra_compile_args={"cxx": cxx, "nvcc": nvcc},
        extra_link_args=link,
    )


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)
