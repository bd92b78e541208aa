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

// A value that is NaN or +-Inf: x - x is 0 for every finite x and NaN otherwise.
ELBITS_HD bool not_finite(float x) { return !(x - x == 0.0f); }
ELBITS_HD bool not_finite(double x) { return !(x - x == 0.0); }

// exp(y) for y <= 0 (the only range the stable softplus/sigmoid need).
// y is split as k*ln2 + r with |r| <= ln2/2; exp(r) is a degree-6 polynomial
// fitted here (reweighted least squares on Chebyshev nodes) to 9.7e-8 relative
// error in float32, and 2^k is put into the exponent bits.
// Underflow costs one max: y is clamped at -127 ln2, where k = -127 makes the
// exponent field 0, so 2^k is read as an exact +0 and so is the result (the
// correctly rounded limit of every quantity built from it, to float32's
// subnormal range). NaN passes the clamp (the comparison is false) and stays NaN.
ELBITS_HD float exp_nonpos(float y) {
  const float kLog2e = 1.4426950408889634f;
  const float kLn2Hi = 0.693145751953125f;      // ln2 with 12 trailing zero bits
  const float kLn2Lo = 1.428606765330187e-06f;  // ln2 - kLn2Hi
  const float kFloor = -88.02969193111305f;     // -127 ln2
  const float yc = y < kFloor ? kFloor : y;
  // trunc(v - 0.5) rounds v <= 0 to nearest; int conversion vectorises on SSE2.
  const float kf = static_cast<float>(static_cast<int32_t>(yc * kLog2e - 0.5f));
  const float r = (yc - kf * kLn2Hi) - kf * kLn2Lo;
  float p = 0.0013836758444085717f;
  p = p * r + 0.008374814875423908f;
  p = p * r + 0.041668228805065155f;
  p = p * r + 0.16666419804096222f;
  p = p * r + 0.49999991059303284f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t k = static_cast<int32_t>(kf);
  return p * bits_to_float(static_cast<uint32_t>(k + 127) << 23);
}

// log1p(e) for e in [0, 1] (the term log1p(exp(-|x|)) of the stable softplus),
// as e * P(e) with P a degree-9 polynomial fitted here (iteratively reweighted
// least squares) to log1p(e)/e: at most 1.5e-7 relative error in float32, no
// division and no range reduction, and log1p(e) ~ e stays exact for tiny e.
ELBITS_HD float log1p_unit(float e) {
  float p = -0.003337107365950942f;
  p = p * e + 0.020270520821213722f;
  p = p * e - 0.05774567276239395f;
  p = p * e + 0.10683189332485199f;
  p = p * e - 0.15352493524551392f;
  p = p * e + 0.19692187011241913f;
  p = p * e - 0.2495729625225067f;
  p = p * e + 0.33330270648002625f;
  p = p * e - 0.49999913573265076f;
  p = p * e + 1.0f;
  return e * p;
}

}  // namespace elbits
