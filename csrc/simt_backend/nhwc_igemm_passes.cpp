// The channels_last implicit GEMM passes (cuda/nhwc_igemm_passes.cu) compiled by g++: their kernels run on CPU
// tensors under the SIMT emulator.
#include "../cuda/nhwc_igemm_passes.cu"
