"""Output-size rules in Python, for fake kernels and argument normalisation.

They mirror csrc/conv_params.cpp, which is what the kernels use; the tests check both against torch.
"""


def conv_output_size(size, kernel, stride, padding, dilation):
    """Extent of a convolution's output along one dimension (below 1 for invalid arguments)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_output_size(size, kernel, stride, padding, dilation, output_padding):
    """Extent of a transposed convolution's output along one dimension."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def transposed_output_padding(input_size, output_size, kernel_size, stride, padding, dilation):
    """The output_padding that makes conv_transpose2d map a conv2d output back to input_size.

    A strided convolution drops up to stride - 1 trailing rows; this restores them.
    """
    return [
        input_size[i] - conv_transpose_output_size(output_size[i], kernel_size[i], stride[i],
                                                   padding[i], dilation[i], 0)
        for i in range(2)
    ]
