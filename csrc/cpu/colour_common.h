// Private helpers of the colour-likelihood kernels: storage dispatch, loads
// and stores in the compute type (float, or double for float64 storage).
#pragma once
#include <cstdint>

#include "elbits/dispatch.h"
#include "elbits/dtypes.h"

namespace elbits::cpu::colour {

}  // namespace elbits::cpu::colour

// Hot tile loops are compiled for baseline x86-64, x86-64-v3 (AVX2/FMA/F16C) and
// x86-64-v4 (AVX-512), chosen by the loader (GCC target_clones / ifunc); the
// templated loop bodies are always_inline so that each clone gets its own copy.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ELBITS_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define ELBITS_CLONES
#endif
#define ELBITS_INLINE inline __attribute__((always_inline))
