// Private helpers of the colour-likelihood kernels: storage dispatch, loads
// and stores in the compute type (float, or double for float64 storage).
#pragma once
#include <cstdint>
#include <type_traits>

#include "elbits/dispatch.h"
#include "elbits/dtypes.h"

namespace elbits::cpu::colour {

template <class S>
using compute_t = std::conditional_t<std::is_same_v<S, double>, double, float>;

inline float ld(float v) { return v; }
inline double ld(double v) { return v; }
inline float ld(half_t v) { return to_float(v); }
inline float ld(bf16_t v) { return to_float(v); }

inline void st(float* p, float v) { *p = v; }
inline void st(double* p, double v) { *p = v; }
inline void st(half_t* p, float v) { *p = from_float<half_t>(v); }
inline void st(bf16_t* p, float v) { *p = from_float<bf16_t>(v); }

inline int64_t level_of(uint8_t v) { return v; }
inline int64_t level_of(int64_t v) { return v; }

inline double load_scale(const void* p, DType d, int64_t i) {
  return d == DType::Float64 ? static_cast<const double*>(p)[i] : static_cast<const float*>(p)[i];
}

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
