// The channels_last depthwise passes (cuda/depthwise_nhwc.cu) compiled by g++: their kernels run on
// CPU tensors under the SIMT emulator.
#include "../cuda/depthwise_nhwc.cu"
