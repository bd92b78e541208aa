// Storage types the kernels read and write, and their float conversions.
// The core never sees a torch type: Python passes a DType code with each
// raw pointer. Arithmetic is always float32 (float64 for float64 storage).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "fastmath.h"
#include "macros.h"
#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace elbits {

// Codes shared with python/elbits/_dtypes.py; keep both in step.
enum class DType : int { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3, UInt8 = 4, Bool = 5, Int64 = 6 };

struct half_t { uint16_t bits; };
struct bf16_t { uint16_t bits; };

ELBITS_HD float to_float(float v) { return v; }
ELBITS_HD double to_float(double v) { return v; }
ELBITS_HD float to_float(uint8_t v) { return static_cast<float>(v); }
ELBITS_HD float to_float(bf16_t v) { return bits_to_float(static_cast<uint32_t>(v.bits) << 16); }
ELBITS_HD float to_float(half_t v) {
#if defined(__CUDACC__)
  return __half2float(__ushort_as_half(v.bits));
#else
  _Float16 h;
  std::memcpy(&h, &v.bits, sizeof h);
  return static_cast<float>(h);
#endif
}

template <class T> ELBITS_HD T from_float(float v);
template <> ELBITS_HD float from_float<float>(float v) { return v; }
template <> ELBITS_HD half_t from_float<half_t>(float v) {
#if defined(__CUDACC__)
  return half_t{__half_as_ushort(__float2half_rn(v))};
#else
  const _Float16 h = static_cast<_Float16>(v);
  half_t out;
  std::memcpy(&out.bits, &h, sizeof h);
  return out;
#endif
}
template <> ELBITS_HD bf16_t from_float<bf16_t>(float v) {
  const uint32_t u = float_to_bits(v);
  // Round to nearest even; a NaN keeps a set mantissa bit so it stays NaN.
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return bf16_t{static_cast<uint16_t>(nan ? ((u >> 16) | 0x40u) : rounded)};
}

}  // namespace elbits

namespace elbits {

// Compute type of a storage type: float, or double for float64 storage. Loads are
// to_float (double stays double); st stores a compute-type value in its storage type.
template <class S>
using compute_t = std::conditional_t<std::is_same_v<S, double>, double, float>;

ELBITS_HD void st(float* p, float v) { *p = v; }
ELBITS_HD void st(double* p, double v) { *p = v; }
ELBITS_HD void st(half_t* p, float v) { *p = from_float<half_t>(v); }
ELBITS_HD void st(bf16_t* p, float v) { *p = from_float<bf16_t>(v); }

// An image level from uint8 or int64 storage, clamped to 0..255; `range` is ORed
// with whether it was outside (reported by the kernels as a bad target).
template <class F>
ELBITS_HD int64_t level_of(int64_t v, F& range) {
  range |= v < 0 || v > 255;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// A per-sample upstream gradient (float32 or float64 [B], any stride) as double.
ELBITS_HD double load_scale(const void* p, DType d, int64_t i) {
  return d == DType::Float64 ? static_cast<const double*>(p)[i] : static_cast<const float*>(p)[i];
}

ELBITS_HD int dtype_size(DType d) {
  switch (d) {
    case DType::Float64:
    case DType::Int64: return 8;
    case DType::Float32: return 4;
    case DType::Float16:
    case DType::BFloat16: return 2;
    default: return 1;
  }
}

}  // namespace elbits
