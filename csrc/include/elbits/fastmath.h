// Branch-free exp / log1p for float, written so that the compiler vectorises
// a loop calling them (no libm call, no table). They are accurate to a few ulp
// on the ranges the loss kernels use them for, and keep IEEE NaN semantics
// without -ffast-math: NaN in gives NaN out.
#pragma once
#include <cstdint>
#include <cstring>

#include "macros.h"

namespace elbits {

ELBITS_HD float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

ELBITS_HD uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

// exp(y) for y <= 0 (the only range the stable softplus/sigmoid need).
// y is split as k*ln2 + r with |r| <= ln2/2; exp(r) is its Taylor series to
// degree 7 (truncation < 6e-9 relative), 2^k is put into the exponent bits.
// Below -87.3 the result would be subnormal: it is flushed to an exact 0,
// which is the correctly rounded limit of every quantity built from it.
ELBITS_HD float exp_nonpos(float y) {
  const float kLog2e = 1.4426950408889634f;
  const float kLn2Hi = 0.693145751953125f;     // ln2 with 12 trailing zero bits
  const float kLn2Lo = 1.428606765330187e-06f;  // ln2 - kLn2Hi
  const bool underflow = y < -87.0f;
  const float yc = underflow ? -87.0f : y;  // NaN compares false: stays NaN
  // trunc(v - 0.5) rounds v <= 0 to nearest; int conversion vectorises on SSE2.
  const float kf = static_cast<float>(static_cast<int32_t>(yc * kLog2e - 0.5f));
  const float r = (yc - kf * kLn2Hi) - kf * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t k = static_cast<int32_t>(kf);
  const float scale = bits_to_float(static_cast<uint32_t>(k + 127) << 23);
  // A multiply, not `underflow ? 0 : p * scale`: GCC would turn that select into
  // a branch around the whole computation and give up vectorising the loop.
  const float keep = underflow ? 0.0f : 1.0f;
  return (p * scale) * keep;
}

// log(u) for u in [1, 2] (the argument 1 + exp(-|x|) of the stable softplus).
// u is brought to m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s), s = (m-1)/(m+1),
// |s| <= 0.172, whose odd series to s^9 is exact to < 3e-9 relative.
ELBITS_HD float log_1to2(float u) {
  const bool high = u > 1.41421356f;
  const float m = high ? 0.5f * u : u;
  const float kf = high ? 1.0f : 0.0f;
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  float p = 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  p = p * s2 + 1.0f;
  return 2.0f * s * p + kf * 0.6931471805599453f;
}

// log1p(e) for e in [0, 1]. u = 1 + e loses the low bits of a small e; the
// first-order correction (e - (u - 1)) / u puts them back, so log1p(e) ~ e
// stays accurate to the ulp when e is tiny (saturated logits).
ELBITS_HD float log1p_unit(float e) {
  const float u = 1.0f + e;
  return log_1to2(u) + (e - (u - 1.0f)) / u;
}

}  // namespace elbits
