// The CUDA dgrad (cuda/dgrad.cu) compiled by g++: its kernels run on CPU tensors under the SIMT emulator.
#include "../cuda/dgrad.cu"
