// Per-ISA clones of the tile loops that are not in the isa_dispatch.h table (the colour
// likelihoods): GCC target_clones compiles each ELBITS_CLONES function for baseline
// x86-64, x86-64-v3 (AVX2/FMA/F16C) and x86-64-v4 (AVX-512), and the loader picks one
// (ifunc). The templated loop bodies are ELBITS_INLINE so that each clone gets its own
// copy, vectorised for its ISA.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ELBITS_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define ELBITS_CLONES
#endif
#define ELBITS_INLINE inline __attribute__((always_inline))
