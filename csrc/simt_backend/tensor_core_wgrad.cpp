// The weight gradient on tensor cores (cuda/tensor_core_wgrad.cu) compiled by g++: its kernels run on CPU
// tensors under the SIMT emulator.
#include "../cuda/tensor_core_wgrad.cu"
