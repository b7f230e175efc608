"""Compare a convolution implementation with torch.nn.functional, forward and both gradients.

The reference is torch in float64 on the same (possibly low-precision-rounded) inputs. The
tolerance of each element is a multiple of the dtype's epsilon times the element's error bound
the same convolution over absolute values, |x| * |w| (and likewise for the gradients), which is
what the rounding error of any summation order is proportional to. A wrong index fails this by
orders of magnitude; correct kernels pass with the small multipliers below.

float32 convolutions on tensor cores (torch.backends.cudnn.allow_tf32, which our CUDA kernels and
convkernels.simt follow) multiply operands rounded to TF32, 10 explicit mantissa bits: each operand
is within 2^-11 of its float32 value, relative, so each product within 2 * 2^-11 + 2^-22 of the
exact one. Summed, that adds TF32_PRODUCT_ERROR times the same |x| * |w| bound.
"""
import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

# Multiples of eps(dtype) allowed per element, relative to the |x|*|w| bound.
ULPS = {torch.float64: 64, torch.float32: 64, torch.float16: 4, torch.bfloat16: 4}
# Relative error of a product of two float32 values rounded to TF32, on top of float32's own.
TF32_PRODUCT_ERROR = 2 * 2.0 ** -11 + 2.0 ** -22


# Every type the channels_last implicit GEMMs multiply, as (dtype, float32 in TF32), and their ids:
# tensor cores for float16, bfloat16 and TF32, CUDA cores for IEEE float32 and float64.
GEMM_TYPES = [(torch.bfloat16, False), (torch.float16, False), (torch.float32, True), (torch.float32, False),
              (torch.float64, False)]
GEMM_TYPE_IDS = ["bfloat16", "float16", "tf32", "float32", "float64"]


@contextlib.contextmanager
def tf32_allowed(allowed):
    """torch.backends.cudnn.allow_tf32 set to `allowed` for the block, then restored."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


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
        assert t.numel() <= 1 or not t.is_contiguous()  # one element is contiguous anyhow
    return t


def assert_matches_torch(impl, case, dtype=torch.float64, memory_format=None,
                         noncontiguous=False, backward=True, device="cpu", tf32=False,
                         weight_memory_format=None):
    """Runs `case` through impl (on `device`) and through torch.nn.functional (in float64 on the
    CPU); asserts the output and the gradients wrt input, weight and bias agree within the dtype's
    tolerance, widened by TF32_PRODUCT_ERROR if `tf32` (float32 multiplied in TF32). The operands
    are in `memory_format`, the weight in `weight_memory_format` where that is given."""
    x = torch.randn(case.input_shape, dtype=torch.float64).to(dtype)
    w = torch.randn(case.weight_shape, dtype=torch.float64).to(dtype)
    channels = case.weight_shape[1] * case.kwargs.get("groups", 1) if case.transposed else case.weight_shape[0]
    b = torch.randn(channels, dtype=torch.float64).to(dtype) if case.bias else None

    formats = (memory_format, weight_memory_format or memory_format)
    mine = [_relayout(t.to(device), f, noncontiguous) for t, f in zip((x, w), formats)] + [b if b is None else b.to(device)]
    mine = [t.detach().requires_grad_(backward) if t is not None else None for t in mine]
    ref = [t.double().detach().requires_grad_(backward) if t is not None else None for t in (x, w, b)]
    absolute = [t.double().abs().requires_grad_(backward) if t is not None else None for t in (x, w, b)]

    out = case.ours(impl)(*mine, **case.kwargs)
    expected = case.torch_fn()(*ref, **case.kwargs)
    bound = case.torch_fn()(*absolute, **case.kwargs)
    assert out.dtype == dtype
    assert out.shape == expected.shape, f"{case}: shape {tuple(out.shape)} != {tuple(expected.shape)}"
    if memory_format is not None and x.dim() == 4:
        torch_out = case.torch_fn()(*[_relayout(t, f, False) for t, f in zip((x.double(), w.double()), formats)], **case.kwargs)
        assert out.is_contiguous(memory_format=memory_format) == torch_out.is_contiguous(memory_format=memory_format)
    _assert_close(out, expected, bound, dtype, f"{case} output", tf32)
    if not backward or expected.numel() == 0:
        return

    # The gradient arrives in the output's layout, as it does from the layers after a conv.
    grad_out = _relayout(torch.randn(expected.shape, dtype=torch.float64).to(dtype), memory_format, False)
    wanted = [t for t in ref if t is not None]
    got = torch.autograd.grad(out, [t for t in mine if t is not None], grad_out.to(device))
    want = torch.autograd.grad(expected, wanted, grad_out.double())
    bounds = torch.autograd.grad(bound, [t for t in absolute if t is not None], grad_out.double().abs())
    for name, g, e, bnd in zip(("grad_input", "grad_weight", "grad_bias"), got, want, bounds):
        assert g.dtype == dtype and g.shape == e.shape, f"{case} {name}: {g.dtype} {tuple(g.shape)}"
        _assert_close(g, e, bnd, dtype, f"{case} {name}", tf32)


def tolerance(bound, dtype, tf32=False):
    """The largest error allowed of a result element of `dtype` whose |x|*|w| bound is `bound`."""
    # Below the smallest normal number the spacing of representable values stops shrinking:
    # allow the same number of ulps of that spacing (it matters for float16, whose subnormals start
    # at 6e-5).
    info = torch.finfo(dtype)
    relative = ULPS[dtype] * info.eps + (TF32_PRODUCT_ERROR if tf32 else 0.0)
    return relative * (bound + info.smallest_normal)


def halfway_between_tf32_numbers(shape, sign):
    """Random float32 values of `sign` exactly halfway between two neighbouring TF32 numbers: the
    most that rounding to TF32 can move a value, and where ties away from zero differ from ties to
    even."""
    bits = (sign * torch.randn(shape, dtype=torch.float32).abs()).view(torch.int32)
    return ((bits & ~0x1FFF) | 0x1000).view(torch.float32)


def round_to_tf32(x):
    """float32 rounded to TF32 as cvt.rna.tf32.f32 does: to nearest, ties away from zero."""
    return ((x.view(torch.int32) + 0x1000) & ~0x1FFF).view(torch.float32)


def forward_and_gradients(fn, x, w, grad_output, **kwargs):
    """fn(x, w, **kwargs) and its gradients wrt x and w for `grad_output`: fprop, dgrad, wgrad."""
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    out = fn(x, w, **kwargs)
    return (out, *torch.autograd.grad(out, (x, w), grad_output))


def assert_tf32_follows_allow_tf32(impl, case, device="cpu"):
    """With allow_tf32, fprop, dgrad and wgrad in float32 are the convolutions of their operands
    rounded to TF32, ties away from zero (cvt.rna.tf32.f32), summed in float32; without it, of the
    float32 operands themselves. The operands lie halfway between TF32 numbers, x and dy positive
    and w negative: all products of a sum have one sign and round away from zero together, so
    every result element of the two paths differs by far more than float32's tolerance, whichever
    the flag chose. `impl` runs on `device`."""
    x = halfway_between_tf32_numbers(case.input_shape, 1)
    w = halfway_between_tf32_numbers(case.weight_shape, -1)
    reference = case.torch_fn()
    out_shape = reference(x.double(), w.double(), **case.kwargs).shape
    dy = halfway_between_tf32_numbers(out_shape, 1)

    on_device = [t.to(device) for t in (x, w, dy)]
    with tf32_allowed(True):
        in_tf32 = forward_and_gradients(case.ours(impl), *on_device, **case.kwargs)
    with tf32_allowed(False):
        in_float32 = forward_and_gradients(case.ours(impl), *on_device, **case.kwargs)
    rounded = forward_and_gradients(reference, *(round_to_tf32(t).double() for t in (x, w, dy)), **case.kwargs)
    exact = forward_and_gradients(reference, x.double(), w.double(), dy.double(), **case.kwargs)
    bounds = forward_and_gradients(reference, x.double().abs(), w.double().abs(), dy.double().abs(), **case.kwargs)

    for name, tf32, float32, want_tf32, want_float32, bound in zip(
            ("output", "grad_input", "grad_weight"), in_tf32, in_float32, rounded, exact, bounds):
        allowed = tolerance(bound, torch.float32)
        tf32, float32 = tf32.double().cpu(), float32.double().cpu()
        assert ((tf32 - want_tf32).abs() <= allowed).all(), f"{case} {name} in TF32"
        assert ((float32 - want_float32).abs() <= allowed).all(), f"{case} {name} in float32"
        summed = bound > 0  # elements that some product reaches
        apart = (tf32 - float32).abs()[summed] > allowed[summed]
        assert apart.all(), f"{case} {name}: TF32 and float32 agree in {int((~apart).sum())} elements"


def _assert_close(actual, expected, bound, dtype, what, tf32=False):
    allowed = tolerance(bound, dtype, tf32)
    actual = actual.cpu()
    error = (actual.double() - expected).abs()
    excess = error - allowed
    if excess.numel() and excess.max() > 0:
        i = int(excess.flatten().argmax())
        raise AssertionError(
            f"{what}: {int((excess > 0).sum())} of {excess.numel()} elements out of tolerance; worst "
            f"at flat index {i}: got {actual.flatten()[i].item()}, expected {expected.flatten()[i].item()} "
            f"(error {error.flatten()[i].item():.3g}, tolerance {allowed.flatten()[i].item():.3g})")
