// The weight gradient on the channels_last GEMM (cuda/nhwc_igemm_wgrad.cu) compiled by g++: its kernels run on CPU
// tensors under the SIMT emulator.
#include "../cuda/nhwc_igemm_wgrad.cu"
