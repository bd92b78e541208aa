// Run-time ISA dispatch for the hot loops. The wheel targets baseline x86-64
// (no -march=native); GCC compiles a function marked ELBITS_SIMD_CLONES once per
// level and an ifunc resolver picks the best one when the module loads. AVX2
// and AVX-512 matter here because the loops' exp/log are plain arithmetic that
// the compiler vectorises to the full register width (and F16C converts halves).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__) && \
    !defined(ELBITS_NO_CLONES)
#define ELBITS_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ELBITS_SIMD_CLONES
#endif
