"""Builds convkernels._C (the C++ kernels, and the CUDA kernels when a CUDA toolchain is present)
and convkernels._simt (the CUDA kernels under the SIMT emulator, for machines without a GPU).

Environment switches:
  CONVKERNELS_CUDA=auto|1|0   build the CUDA sources when nvcc and a CUDA build of torch are
                              present (auto, the default), always (1: fail if impossible) or never.
  CONVKERNELS_SIMT=auto|1|0   build convkernels._simt, the CUDA kernels compiled by the host
                              compiler against the SIMT emulator (needs CUDA's headers, not a GPU).
  TORCH_CUDA_ARCH_LIST        GPU targets; defaults to the visible GPUs, or 9.0a with none visible.
                              9.0a (sm_90a, H100/H200 only) holds the wgmma kernels; a visible
                              sm_90 GPU gets 9.0a, not 9.0.
  MAX_JOBS                    parallel compile jobs (torch.utils.cpp_extension honours it).
  CONVKERNELS_DEBUG=1         -O0 -g, for gdb.
  CONVKERNELS_SANITIZE=1      AddressSanitizer and UBSan (make sanitize): host code only, so no
                              CUDA build; -fno-wrapv, or UBSan could not see signed overflow.
"""
import glob
import os
import sysconfig

from setuptools import setup
import torch
from torch.utils import cpp_extension

# cpp_extension compiles in parallel only when it finds ninja on PATH; a virtual environment's ninja
# lies beside its python, which need not be on PATH (pip install from an unactivated venv).
os.environ["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])


def wanted(switch, possible, missing):
    """An auto|1|0 build switch: auto builds what is possible; 1 fails when it is not."""
    mode = os.environ.get(switch, "auto").lower()
    if mode in ("0", "off", "false", "no"):
        return False
    if mode in ("1", "on", "true", "yes") and not possible:
        raise RuntimeError(f"{switch}={mode} but {missing}")
    return possible


def emulator_cuda_include():
    """A CUDA include folder that host compilers can use for cuda_fp16.h and cuda_bf16.h: they need
    crt/host_defines.h beside them, which pip's nvidia wheels do not ship."""
    roots = [cpp_extension.CUDA_HOME, "/usr/local/cuda"] + [os.path.dirname(d) for d in pip_cuda_includes()]
    for root in filter(None, roots):
        include = os.path.join(root, "include")
        if all(os.path.exists(os.path.join(include, f)) for f in ("cuda_fp16.h", "crt/host_defines.h")):
            return include
    return None


def pip_cuda_includes():
    """CUDA headers that pip's nvidia-* wheels install beside torch (cuda_runtime.h, cuda_fp16.h)."""
    site = sysconfig.get_paths()["purelib"]
    return sorted(glob.glob(os.path.join(site, "nvidia", "cu*", "include")))


def cuda_library_dirs():
    """Where libcudart.so lies: CUDAExtension links it, but a CUDA_HOME inferred from an nvcc on
    PATH (/usr/local/bin/nvcc gives /usr/local) may not hold it."""
    candidates = [os.path.join(cpp_extension.CUDA_HOME, "lib64"), "/usr/local/cuda/lib64"]
    return [d for d in candidates if os.path.exists(os.path.join(d, "libcudart.so"))][:1]


def cuda_arch_list():
    """The GPU targets (TORCH_CUDA_ARCH_LIST), set where the user did not: Hopper's sm_90a, the GPU
    this project targets, when no GPU is visible or every visible one is an sm_90 (H100, H200: the
    wgmma kernels need the "a" target); otherwise torch's default, the visible GPUs."""
    if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        visible = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
        if visible <= {(9, 0)}:
            os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0a"
    return os.environ.get("TORCH_CUDA_ARCH_LIST", "").replace(" ", ";").split(";")


def sources(*patterns):
    return sorted(f for pattern in patterns for f in glob.glob(os.path.join("csrc", pattern)))


def extensions():
    debug = os.environ.get("CONVKERNELS_DEBUG") == "1"
    opt = ["-O0", "-g"] if debug else ["-O3"]
    # -fopenmp: at::parallel_for only runs in parallel in code compiled with OpenMP (torch ships
    # libgomp). -march=native: the extension is always built on the machine that runs it, and the
    # CPU kernels are written for the vector width the compiler finds there (AVX2 or AVX-512).
    # -std=c++20 given explicitly: torch 2.11's cpp_extension defaults to C++17 (2.14's to C++20).
    cxx = opt + ["-std=c++20", "-fopenmp", "-march=native", "-Wall", "-Wno-unknown-pragmas"]
    link = ["-fopenmp"]
    sanitize = os.environ.get("CONVKERNELS_SANITIZE") == "1"
    if sanitize:
        # Python's own flags bring -fwrapv, which defines signed overflow away; undo it.
        sanitizers = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
        cxx += ["-O1", "-g", "-fno-omit-frame-pointer", "-fno-wrapv"] + sanitizers
        link += sanitizers
    common = sources("*.cpp")
    built = []

    cuda = not sanitize and wanted(
        "CONVKERNELS_CUDA", torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None,
        f"no CUDA toolchain (torch.version.cuda={torch.version.cuda}, CUDA_HOME={cpp_extension.CUDA_HOME})")
    if cuda:
        arches = cuda_arch_list()
        nvcc = opt + ["-std=c++20", "--expt-relaxed-constexpr", "-Xptxas=-v", "-lineinfo"]
        if "9.0a" in (arch.removesuffix("+PTX") for arch in arches):
            # The host code picks the wgmma kernels only where the build has their sm_90a code.
            nvcc.append("-DSIMT_SM90A_BUILD")
        built.append(cpp_extension.CUDAExtension(
            "convkernels._C",
            common + sources("cpu/*.cpp", "cuda/*.cu"),
            include_dirs=pip_cuda_includes(),
            library_dirs=cuda_library_dirs(),
            define_macros=[("CONVKERNELS_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx, "nvcc": nvcc},
            extra_link_args=link,
        ))
    else:
        built.append(cpp_extension.CppExtension(
            "convkernels._C", common + sources("cpu/*.cpp"), extra_compile_args={"cxx": cxx},
            extra_link_args=link))

    include = emulator_cuda_include()
    if wanted("CONVKERNELS_SIMT", include is not None, "no CUDA headers usable by the host compiler"):
        # Hidden visibility: this library holds a second, emulated, definition of every CUDA
        # kernel symbol of convkernels._C; neither may bind to the other's.
        built.append(cpp_extension.CppExtension(
            "convkernels._simt",
            sources("conv_ops.cpp", "conv_params.cpp", "simt_backend/*.cpp"),
            include_dirs=[include],
            extra_compile_args={"cxx": cxx + ["-fvisibility=hidden", "-fvisibility-inlines-hidden"]},
            extra_link_args=link))
    return built


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)
