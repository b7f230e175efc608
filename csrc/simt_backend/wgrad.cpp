// The CUDA wgrad (cuda/wgrad.cu) compiled by g++: its kernels run on CPU tensors under the SIMT emulator.
#include "../cuda/wgrad.cu"
