"""One small call of every CUDA kernel (fprop, dgrad, wgrad of the general, 1x1 and depthwise
paths, a large depthwise filter, every dtype), for compute-sanitizer's memcheck and racecheck."""
import torch

import convkernels

CASES = [
    # (input shape, weight shape, kwargs)
    ((2, 8, 13, 11), (12, 4, 3, 3), dict(padding=1, groups=2, stride=2)),  # general
    ((2, 8, 9, 9), (16, 8, 1, 1), {}),                                      # pointwise
    ((2, 8, 17, 15), (16, 1, 5, 5), dict(padding=2, groups=8)),             # depthwise, multiplier 2
    ((1, 4, 24, 24), (4, 1, 31, 31), dict(padding=15, groups=4)),           # large depthwise
]


def main():
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        for input_shape, weight_shape, kwargs in CASES:
            x = torch.randn(input_shape, device="cuda", dtype=dtype, requires_grad=True)
            w = torch.randn(weight_shape, device="cuda", dtype=dtype, requires_grad=True)
            y = convkernels.conv2d(x, w, **kwargs)  # fprop
            y.backward(torch.randn_like(y))            # dgrad (conv_transpose2d) and wgrad
            convkernels.conv_transpose2d(y.detach(), w.detach(), stride=kwargs.get("stride", 1),
                                         padding=kwargs.get("padding", 0), groups=kwargs.get("groups", 1))
    torch.cuda.synchronize()
    print("sanitizer cases ran")


if __name__ == "__main__":
    main()
