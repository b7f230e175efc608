"""One small call of every CUDA kernel (fprop, dgrad, wgrad of the general, 1x1 and depthwise
paths, a large depthwise filter, the channels_last implicit GEMM's tiles and on an sm_90 GPU its
TMA kernel, the channels_last depthwise kernels, every dtype, float32 in TF32, IEEE and 3xTF32),
for compute-sanitizer's memcheck and racecheck."""
import contextlib

import torch

import convkernels

CASES = [
    # (input shape, weight shape, kwargs)
    ((2, 8, 13, 11), (12, 4, 3, 3), dict(padding=1, groups=2, stride=2)),  # general (small groups)
    ((2, 3, 13, 11), (72, 3, 3, 3), dict(padding=1)),                       # channels_last GEMM, 128x128
    ((2, 40, 9, 7), (40, 20, 3, 3), dict(padding=1, groups=2)),             # channels_last GEMM, groups
    ((2, 48, 9, 7), (72, 48, 3, 3), dict(padding=1, stride=2)),             # half types on sm_90: TMA GEMM
    ((2, 8, 9, 9), (16, 8, 1, 1), {}),                                      # pointwise
    ((2, 8, 17, 15), (16, 1, 5, 5), dict(padding=2, groups=8)),             # depthwise, multiplier 2
    ((1, 4, 24, 24), (4, 1, 31, 31), dict(padding=15, groups=4)),           # large depthwise
]
# Activations in channels_last: the depthwise kernels of csrc/cuda/depthwise_nhwc.
CHANNELS_LAST_CASES = [
    ((2, 16, 13, 11), (16, 1, 3, 3), dict(padding=1, groups=16, stride=2)),  # 16-byte channel vectors
    ((2, 13, 9, 10), (26, 1, 5, 5), dict(padding=2, groups=13)),            # single channels, multiplier 2
]


@contextlib.contextmanager
def float32_mode(mode):
    """float32 as torch's default has it ("default": TF32), in "ieee" float32 or in "3xtf32"."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = mode == "default"
    previous = convkernels.set_float32_precision("3xtf32" if mode == "3xtf32" else "default")
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved
        convkernels.set_float32_precision(previous)


RUNS = [(torch.float32, "default"), (torch.float32, "ieee"), (torch.float32, "3xtf32"), (torch.float64, "default"),
        (torch.float16, "default"), (torch.bfloat16, "default")]


def main():
    cases = [(case, torch.contiguous_format) for case in CASES]
    cases += [(case, torch.channels_last) for case in CHANNELS_LAST_CASES]
    for dtype, mode in RUNS:
        for (input_shape, weight_shape, kwargs), memory_format in cases:
            with float32_mode(mode):
                x = torch.randn(input_shape, device="cuda", dtype=dtype).contiguous(memory_format=memory_format)
                x.requires_grad_()
                w = torch.randn(weight_shape, device="cuda", dtype=dtype, requires_grad=True)
                y = convkernels.conv2d(x, w, **kwargs)  # fprop
                y.backward(torch.randn_like(y))            # dgrad (conv_transpose2d) and wgrad
                convkernels.conv_transpose2d(y.detach(), w.detach(), stride=kwargs.get("stride", 1),
                                             padding=kwargs.get("padding", 0), groups=kwargs.get("groups", 1))
    torch.cuda.synchronize()
    print("sanitizer cases ran")


if __name__ == "__main__":
    main()
