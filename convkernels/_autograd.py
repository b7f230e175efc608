"""An op's Autograd kernel with reverse- and forward-mode formulas, correct under torch.func.

torch.library.register_autograd has no place for a forward-mode formula (under
torch.autograd.forward_ad and torch.func.jvp the tangent would be silently dropped), and the
autograd.Function it builds is refused by functorch's grad transform. The Autograd kernel of one of
torch's own ops records one node at the current autograd level and runs the op below autograd,
where the functorch layers underneath (vmap, outer grad or jvp levels) treat it as any other call.
A ``_SingleLevelFunction`` applied with functorch's single-level permission does exactly that
(torch registers ``aten::to_dense``'s functorch kernel the same way).
"""
import torch
from torch._functorch.utils import enable_single_level_autograd_function
from torch.autograd import forward_ad
from torch.autograd.forward_ad import _set_fwd_grad_enabled
from torch.autograd.function import _SingleLevelFunction


def _may_differentiate(args):
    """Whether a call may need an op's formulas: an input requires grad in grad mode, a dual level
    is open (forward AD), or a torch.func transform is active. Otherwise the autograd.Function,
    some 15 us a call, is skipped."""
    return ((torch.is_grad_enabled() and torch._C._any_requires_grad(*args))
            or forward_ad._current_level >= 0 or torch._C._are_functorch_transforms_active())


def register_autograd(lib, name, setup_context, backward, jvp):
    """Registers the Autograd kernel of op ``name`` in ``lib``'s namespace.

    ``setup_context``, ``backward`` and ``jvp`` are those of an autograd.Function whose forward
    is the op, except that inputs without a tangent get None in ``jvp``, not zeros to compute with
    (the grads and tangents are not materialised), and ``backward`` never sees a None grad.
    """
    op = getattr(getattr(torch.ops, lib.ns), name).default
    defaults = [argument.default_value for argument in op._schema.arguments]

    # The last input of the Function is the caller's (grad mode, forward grad mode). An
    # autograd.Function runs its forward with both off; torch's own autograd kernels leave them
    # as they are, and the functorch levels below this one (the grad and jvp levels of nested
    # transforms: hessian, jvp of grad) need them as they are.
    def forward(*args_and_modes):
        *args, (grad_enabled, fwd_grad_enabled) = args_and_modes
        with torch.set_grad_enabled(grad_enabled), _set_fwd_grad_enabled(fwd_grad_enabled), \
                torch._C._AutoDispatchBelowAutograd():
            return op(*args)

    def setup_without_materialized_grads(ctx, inputs, output):
        ctx.set_materialize_grads(False)
        setup_context(ctx, inputs[:-1], output)

    def backward_of_defined_grad(ctx, grad):
        if grad is None:  # nothing flows back through this output
            return (None,) * len(ctx.needs_input_grad)
        return *backward(ctx, grad), None

    def jvp_of_inputs(ctx, *tangents):
        return jvp(ctx, *tangents[:-1])

    function = type(f"{lib.ns}_{name}", (_SingleLevelFunction,), {
        "forward": staticmethod(forward),
        "setup_context": staticmethod(setup_without_materialized_grads),
        "backward": staticmethod(backward_of_defined_grad),
        "jvp": staticmethod(jvp_of_inputs),
    })

    def autograd_kernel(*args):
        # The dispatcher leaves out trailing arguments equal to their defaults; the formulas
        # see every argument.
        args = (*args, *defaults[len(args):])
        if not _may_differentiate(args):
            with torch._C._AutoDispatchBelowAutograd():
                return op(*args)
        modes = (torch.is_grad_enabled(), torch._C._is_fwd_grad_enabled())
        with enable_single_level_autograd_function():
            return function.apply(*args, modes)

    lib.impl(name, autograd_kernel, "Autograd")
