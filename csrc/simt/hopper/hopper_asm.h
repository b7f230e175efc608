// Inline PTX of the Hopper instructions, or a trap on targets that lack them: nvcc compiles every
// __device__ function for every target of a build, and the sm_80 path never calls these.
//   SIMT_SM90_ASM(...)    asm volatile(...) on sm_90 and later (mbarrier's sm_90 forms, bulk copies)
//   SIMT_SM90A_ASM(...)   asm volatile(...) on sm_90a only (wgmma)
// Outputs of a trapped asm are never read; initialise them so the compiler need not prove it.
#pragma once

#if defined(__CUDACC__)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define SIMT_SM90_ASM(...) asm volatile(__VA_ARGS__)
#else
#define SIMT_SM90_ASM(...) __trap()
#endif
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SIMT_SM90A_ASM(...) asm volatile(__VA_ARGS__)
#else
#define SIMT_SM90A_ASM(...) __trap()
#endif
#endif
