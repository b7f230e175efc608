"""Compare a convolution implementation with torch.nn.functional, forward and both gradients.

The reference is torch in float64 on the same (possibly low-precision-rounded) inputs. The
tolerance of each element is a multiple of the dtype's epsilon times the element's error bound
the same convolution over absolute values, |x| * |w| (and likewise for the gradients), which is
what the rounding error of any summation order is proportional to. A wrong index fails this by
orders of magnitude; correct kernels pass with the small multipliers below.
"""
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

# Multiples of eps(dtype) allowed per element, relative to the |x|*|w| bound.
ULPS = {torch.float64: 64, torch.float32: 64, torch.float16: 4, torch.bfloat16: 4}


@dataclass
class ConvCase:
    """One convolution: conv2d(x, w) or conv_transpose2d(x, w) with torch's argument forms."""
    transposed: bool
    input_shape: tuple  # (N, C, H, W), or (C, H, W) unbatched
    weight_shape: tuple
    bias: bool = True
    kwargs: dict = field(default_factory=dict)
    shuffled: bool = False  # conv2d followed by a channel shuffle of its `groups` groups

    def __str__(self):
        kind = "convT" if self.transposed else "shuffled-conv" if self.shuffled else "conv"
        args = ",".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{kind}-x{list(self.input_shape)}-w{list(self.weight_shape)}-b{int(self.bias)}-{args}"

    def torch_fn(self):
        if self.shuffled:
            return lambda *args, **kwargs: F.channel_shuffle(F.conv2d(*args, **kwargs), kwargs["groups"])
        return F.conv_transpose2d if self.transposed else F.conv2d

    def ours(self, impl):
        if self.shuffled:
            return impl.shuffled_conv2d
        return impl.conv_transpose2d if self.transposed else impl.conv2d


def _relayout(t, memory_format, noncontiguous):
    if memory_format is not None and t.dim() == 4:
        t = t.contiguous(memory_format=memory_format)
    if noncontiguous:
        # Same values, every other element of a twice-as-wide buffer.
        wide = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
        wide[..., ::2] = t
        t = wide[..., ::2]
        assert t.numel() == 0 or not t.is_contiguous()
    return t


def assert_matches_torch(impl, case, dtype=torch.float64, memory_format=None,
                         noncontiguous=False, backward=True, device="cpu"):
    """Runs `case` through impl (on `device`) and through torch.nn.functional (in float64 on the
    CPU); asserts the output and the gradients wrt input, weight and bias agree within the dtype's
    tolerance."""
    x = torch.randn(case.input_shape, dtype=torch.float64).to(dtype)
    w = torch.randn(case.weight_shape, dtype=torch.float64).to(dtype)
    channels = case.weight_shape[1] * case.kwargs.get("groups", 1) if case.transposed else case.weight_shape[0]
    b = torch.randn(channels, dtype=torch.float64).to(dtype) if case.bias else None

    mine = [_relayout(t.to(device), memory_format, noncontiguous) for t in (x, w)] + [b if b is None else b.to(device)]
    mine = [t.detach().requires_grad_(backward) if t is not None else None for t in mine]
    ref = [t.double().detach().requires_grad_(backward) if t is not None else None for t in (x, w, b)]
    absolute = [t.double().abs().requires_grad_(backward) if t is not None else None for t in (x, w, b)]

    out = case.ours(impl)(*mine, **case.kwargs)
    expected = case.torch_fn()(*ref, **case.kwargs)
    bound = case.torch_fn()(*absolute, **case.kwargs)
    assert out.dtype == dtype
    assert out.shape == expected.shape, f"{case}: shape {tuple(out.shape)} != {tuple(expected.shape)}"
    if memory_format is not None and x.dim() == 4:
        torch_out = case.torch_fn()(*[_relayout(t, memory_format, False) for t in (x.double(), w.double())], **case.kwargs)
        assert out.is_contiguous(memory_format=memory_format) == torch_out.is_contiguous(memory_format=memory_format)
    _assert_close(out, expected, bound, dtype, f"{case} output")
    if not backward or expected.numel() == 0:
        return

    grad_out = torch.randn(expected.shape, dtype=torch.float64).to(dtype)
    wanted = [t for t in ref if t is not None]
    got = torch.autograd.grad(out, [t for t in mine if t is not None], grad_out.to(device))
    want = torch.autograd.grad(expected, wanted, grad_out.double())
    bounds = torch.autograd.grad(bound, [t for t in absolute if t is not None], grad_out.double().abs())
    for name, g, e, bnd in zip(("grad_input", "grad_weight", "grad_bias"), got, want, bounds):
        assert g.dtype == dtype and g.shape == e.shape, f"{case} {name}: {g.dtype} {tuple(g.shape)}"
        _assert_close(g, e, bnd, dtype, f"{case} {name}")


def _assert_close(actual, expected, bound, dtype, what):
    # Below the smallest normal number the spacing of representable values stops shrinking:
    # allow the same number of ulps of that spacing (it matters for float16, whose subnormals start
    # at 6e-5).
    info = torch.finfo(dtype)
    tolerance = ULPS[dtype] * info.eps * (bound + info.smallest_normal)
    actual = actual.cpu()
    error = (actual.double() - expected).abs()
    excess = error - tolerance
    if excess.numel() and excess.max() > 0:
        i = int(excess.flatten().argmax())
        raise AssertionError(
            f"{what}: {int((excess > 0).sum())} of {excess.numel()} elements out of tolerance; worst "
            f"at flat index {i}: got {actual.flatten()[i].item()}, expected {expected.flatten()[i].item()} "
            f"(error {error.flatten()[i].item():.3g}, tolerance {tolerance.flatten()[i].item():.3g})")
