// Portability macros shared by the CPU (g++) and CUDA (nvcc) builds.
// Every per-element function in these headers is ELBITS_HD so that the CUDA
// kernels include exactly the math the CPU tests exercise.
#pragma once

#if defined(__CUDACC__)
#define ELBITS_HD __host__ __device__ __forceinline__
#define ELBITS_DEVICE_CODE 1
#elif defined(__GNUC__)
// always_inline: the CPU kernels are compiled once per ISA (target_clones);
// a helper that stayed out of line would be compiled for baseline x86-64 only
// and break the loop's vectorisation.
#define ELBITS_HD inline __attribute__((always_inline))
#else
#define ELBITS_HD inline
#endif
