// Discretized logistic (PixelCNN++, Salimans et al. 2017) of one subpixel, in
// log space, exact in every bin.
// The data x = level / 127.5 - 1 lies in [-1, 1]; a bin is [x - h, x + h] with
// h = 1/255, except level 0 whose bin extends to -inf and level 255 to +inf.
// With s = exp(-log_scale), a = s (x + h - m), b = s (x - h - m), d = a - b = 2 h s,
//   P(bin) = sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(-d))
// (exact identity), so
//   log P = -softplus(-a) - softplus(b) + log(1 - exp(-d))
// and each term is computed without cancellation or underflow for every a, b, d:
// no mid-point density fallback is needed (PixelCNN++ switches to one when the
// float32 difference of CDFs drops below 1e-5; here the bin mass is exact in
// log space down to exp(-1e38)). Edge bins drop the terms of the infinite edge:
//   level 0:   log P = -softplus(-a),   level 255: log P = -softplus(b).
// log(1 - exp(-d)) for small d is log d + log((1 - e^-d)/d), with log d =
// log(2h) - log_scale taken straight from the parameter (no underflow of s).
#pragma once
#include "logmath.h"
#include "macros.h"

namespace elbits {

// log(1 - exp(-d)) (d > 0) given log d, and its derivative times d: d / expm1(d).
ELBITS_HD void log1mexp(float d, float log_d, float& l, float& ddl) {
  // d < 1/4: series of (1 - e^-d)/d and d/expm1(d), truncation < 1e-8.
  float q = -1.0f / 720.0f;
  q = q * d + 1.0f / 120.0f;
  q = q * d - 1.0f / 24.0f;
  q = q * d + 1.0f / 6.0f;
  q = q * d - 0.5f;
  q = q * d + 1.0f;
  const float d2 = d * d;
  const float r_small = 1.0f - 0.5f * d + d2 * (1.0f / 12.0f - d2 * (1.0f / 720.0f));
  const float e = exp_nonpos(-d);
  const float om = 1.0f - e;  // >= 0.22 on the large branch
  const bool small = d < 0.25f;
  // One log of a selected argument, both ratios computed: a select, not a branch
  // (GCC would otherwise branch around the two logs and stop vectorising).
  const float r_large = d * e / om;
  l = (small ? log_d : 0.0f) + log_pos(small ? q : om);
  ddl = small ? r_small : r_large;
}
ELBITS_HD void log1mexp(double d, double log_d, double& l, double& ddl) {
  const double em1 = expm1(-d);  // -(1 - e^-d)
  l = d < 0.25 ? log_d + log(-em1 / d) : log(-em1);
  ddl = d > 0.0 ? d * (1.0 + em1) / -em1 : 1.0;
}

// log P(bin) of one subpixel and its derivatives w.r.t. the mean and the
// (already clamped) log-scale. has_lo = 0 for level 0, has_hi = 0 for 255.
template <class T>
ELBITS_HD void discretized_logistic(T x, T has_lo, T has_hi, T m, T log_scale, T& logp, T& dm, T& dls) {
  const T h = T(1.0 / 255.0);
  const T s = ex_le8(-log_scale);  // log_scale >= -7
  const T c = x - m;
  const T a = s * (c + h);
  const T b = s * (c - h);
  T sp_na, sig_na, sp_b, sig_b;
  softplus_sigmoid(-a, sp_na, sig_na);  // log sigmoid(a) = -softplus(-a)
  softplus_sigmoid(b, sp_b, sig_b);     // log sigmoid(-b) = -softplus(b)
  const T d = T(2.0 / 255.0) * s;
  T ld, dd;
  log1mexp(d, T(-4.848116364598481) - log_scale, ld, dd);  // log(2/255)
  const T both = has_lo * has_hi;
  logp = -(has_hi * sp_na) - has_lo * sp_b + both * ld;
  dm = -s * (has_hi * sig_na - has_lo * sig_b);
  dls = -a * has_hi * sig_na + b * has_lo * sig_b - both * dd;
}

}  // namespace elbits
