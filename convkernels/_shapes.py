"""Output-size rules in Python, for fake kernels and argument normalisation.

They mirror csrc/conv_params.cpp, which is what the kernels use; the tests check both against torch.
"""
import torch


def conv_output_size(size, kernel, stride, padding, dilation):
    """Extent of a convolution's output along one dimension (below 1 for invalid arguments)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_output_size(size, kernel, stride, padding, dilation, output_padding):
    """Extent of a transposed convolution's output along one dimension."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def conv_output_spatial(input_shape, weight_shape, stride, padding, dilation):
    """A conv2d's output height and width, or the RuntimeError conv_params.cpp raises (torch's
    wording) when the dilated kernel is larger than the padded input."""
    size = [conv_output_size(input_shape[2 + i], weight_shape[2 + i], stride[i], padding[i], dilation[i])
            for i in range(2)]
    padded = [input_shape[2 + i] + 2 * padding[i] for i in range(2)]
    kernel = [dilation[i] * (weight_shape[2 + i] - 1) + 1 for i in range(2)]
    _check_positive(size, lambda: (
        f"Calculated padded input size per channel: ({padded[0]} x {padded[1]}). Kernel size: "
        f"({kernel[0]} x {kernel[1]}). Kernel size can't be greater than actual input size"))
    return size


def conv_transpose_output_spatial(input_shape, weight_shape, stride, padding, dilation, output_padding):
    """A conv_transpose2d's output height and width, or the RuntimeError conv_params.cpp raises
    (torch's wording) when the padding removes all of it."""
    size = [conv_transpose_output_size(input_shape[2 + i], weight_shape[2 + i], stride[i], padding[i],
                                       dilation[i], output_padding[i])
            for i in range(2)]
    _check_positive(size, lambda: (
        f"Given input size per channel: ({input_shape[2]} x {input_shape[3]}). Calculated output "
        f"size per channel: ({size[0]} x {size[1]}). Output size is too small"))
    return size


def _check_positive(sizes, message):
    # One torch._check per size: under dynamic shapes it guards only on size >= 1, where a Python
    # comparison between sizes (min) would specialise the graph on their order.
    for size in sizes:
        torch._check(size >= 1, message)


def transposed_output_padding(input_size, output_size, kernel_size, stride, padding, dilation):
    """The output_padding that makes conv_transpose2d map a conv2d output back to input_size.

    A strided convolution drops up to stride - 1 trailing rows; this restores them.
    """
    return [
        input_size[i] - conv_transpose_output_size(output_size[i], kernel_size[i], stride[i],
                                                   padding[i], dilation[i], 0)
        for i in range(2)
    ]
