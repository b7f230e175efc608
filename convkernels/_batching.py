"""torch.vmap batching rules of the three ops, built the way torch batches its own convolution
(aten/src/ATen/functorch/BatchRulesConvolution.cpp): a vmapped input alone joins the batch
dimension; otherwise the examples stand side by side along the channels, each its own set of
groups, so one call of the op computes them all.

A rule receives the operands without their vmapped dimension and ``in_dims`` saying where it was
(None: shared by every example); it returns the result and where its vmapped dimension is.
"""
from .shuffle import channel_shuffle


def _vmapped_first(tensor, dim, size):
    """tensor with its vmapped dimension first, expanded to `size` examples if it has none."""
    return tensor.expand(size, *tensor.shape) if dim is None else tensor.movedim(dim, 0)


def _side_by_side(tensor, dim, size):
    """(N, C, H, W) examples as one (N, examples * C, H, W) tensor, channels example-major."""
    return _vmapped_first(tensor, dim, size).movedim(0, 1).flatten(1, 2)


def convolution_rule(op, groups_index):
    """Rule of op(input, weight, bias, *hyperparameters), a convolution with groups at
    hyperparameters[groups_index].

    Side by side, example e's weight, of groups g, is groups e*g .. e*g+g-1 of one convolution of
    examples*g groups: it meets exactly example e's channels and writes example e's outputs.
    """
    def rule(info, in_dims, input, weight, bias, *hyperparameters):
        input_dim, weight_dim, bias_dim = in_dims[:3]
        if weight_dim is None and bias_dim is None:
            input = input.movedim(input_dim, 0)
            output = op(input.flatten(0, 1), weight, bias, *hyperparameters)
            return output.unflatten(0, input.shape[:2]), 0
        size = info.batch_size
        hyperparameters = list(hyperparameters)
        hyperparameters[groups_index] *= size
        output = op(_side_by_side(input, input_dim, size),
                    _vmapped_first(weight, weight_dim, size).flatten(0, 1),
                    None if bias is None else _vmapped_first(bias, bias_dim, size).flatten(),
                    *hyperparameters)
        return output.unflatten(1, (size, output.shape[1] // size)), 1
    return rule


def conv2d_rule(op):
    """Rule of conv2d(input, weight, bias, stride, padding, dilation, groups, shuffle_output)."""
    unshuffled = convolution_rule(op, groups_index=3)

    # shuffle_output has a default: the dispatcher leaves it out when it is False.
    def rule(info, in_dims, input, weight, bias, stride, padding, dilation, groups,
             shuffle_output=False):
        args = (input, weight, bias, stride, padding, dilation, groups)
        if not shuffle_output or in_dims[1:3] == (None, None):  # the batch keeps the op's shuffle
            return unshuffled(info, in_dims, *args, shuffle_output)
        # Side by side, the op would shuffle across all examples' groups: shuffle each example's.
        output, dim = unshuffled(info, in_dims, *args, False)
        output = output.movedim(dim, 0)
        return channel_shuffle(output.flatten(0, 1), groups).unflatten(0, output.shape[:2]), 0
    return rule


def conv2d_weight_rule(op):
    """Rule of conv2d_weight(input, grad_output, weight_size, stride, padding, dilation, groups):
    always side by side, since the weight gradient sums over the batch."""
    def rule(info, in_dims, input, grad_output, weight_size, stride, padding, dilation, groups):
        size = info.batch_size
        grad_weight = op(_side_by_side(input, in_dims[0], size),
                         _side_by_side(grad_output, in_dims[1], size),
                         [size * weight_size[0], *weight_size[1:]], stride, padding, dilation,
                         size * groups)
        return grad_weight.unflatten(0, (size, weight_size[0])), 0
    return rule
