// The channels_last tensor-core passes (cuda/tensor_core_passes.cu) compiled by g++: their kernels run on CPU
// tensors under the SIMT emulator.
#include "../cuda/tensor_core_passes.cu"
