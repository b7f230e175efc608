"""channel_shuffle: ShuffleNet's channel permutation, as torch.nn.functional.channel_shuffle."""
import torch
from torch import Tensor
from torch._prims_common import suggest_memory_format


def channel_shuffle(input: Tensor, groups: int) -> Tensor:
    """Interleaves the channels of ``groups`` equal groups; same result as
    :func:`torch.nn.functional.channel_shuffle`.

    The channels are dimension 1 of an input of shape ``(N, C, *)``, at least 3-D, as in torch (a
    3-D input is ``(N, C, L)``, not an unbatched image). Seen as a ``groups x C/groups`` matrix,
    the channel order is transposed: input channel ``g * (C // groups) + i`` becomes output
    channel ``i * groups + g``, so that every run of ``groups`` consecutive output channels holds
    one channel of each group.

    A pure permutation: one copy through views, no arithmetic. Like torch's, the result is
    channels_last when the input is, else contiguous; it is differentiable.
    """
    if groups <= 0:
        raise RuntimeError(
            f"Number of groups to divide channels in must be positive. Value of groups:{groups}")
    if input.dim() <= 2:
        raise RuntimeError(f"channel_shuffle expects input with > 2 dims, but got input with sizes "
                           f"{list(input.shape)}")
    channels = input.shape[1]
    if channels % groups != 0:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got {channels} "
                           f"channels and {groups} groups.")
    output = torch.empty_like(input, memory_format=suggest_memory_format(input))
    # view rather than unflatten: the older vmap of is_grads_batched=True has rules for view only.
    batch, rest = input.shape[:1], input.shape[2:]
    output.view(*batch, channels // groups, groups, *rest).copy_(
        input.view(*batch, groups, channels // groups, *rest).transpose(1, 2))
    return output
