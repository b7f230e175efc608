// The CUDA fprop (cuda/fprop.cu) compiled by g++: its kernels run on CPU tensors under the SIMT emulator.
#include "../cuda/fprop.cu"
