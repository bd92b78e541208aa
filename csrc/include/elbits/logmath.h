// Vectorisable exp/log pieces for the colour likelihoods (float), with float64
// overloads on libm so that the same templates serve gradcheck. Like
// fastmath.h: no libm call in the float paths, IEEE NaN semantics kept, so a
// loop over pixels calling them vectorises without -ffast-math.
#pragma once
#include <cmath>
#include <cstdint>

#include "fastmath.h"
#include "macros.h"

namespace elbits {

// log(x), float: the Cephes logf scheme (mantissa in [sqrt(1/2), sqrt(2)),
// degree-8 polynomial), ~1 ulp. Subnormals are rescaled; x = 0 gives -inf,
// +inf gives +inf, x < 0 and NaN give NaN. Branch-free (selects only).
ELBITS_HD float log_pos(float x) {
  const bool sub = x < 1.17549435e-38f;
  const float xs = sub ? x * 8388608.0f : x;  // 2^23
  const uint32_t u = float_to_bits(xs);
  int32_t e = static_cast<int32_t>((u >> 23) & 0xffu) - 126;
  float m = bits_to_float((u & 0x007fffffu) | 0x3f000000u);  // [0.5, 1)
  const bool low = m < 0.70710678118654752f;
  e -= low ? 1 : 0;
  m = low ? (m + m - 1.0f) : (m - 1.0f);
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  const float ef = static_cast<float>(e) - (sub ? 23.0f : 0.0f);
  y += ef * -2.12194440e-4f;
  y += -0.5f * z;
  float r = (m + y) + ef * 0.693359375f;
  r = x == INFINITY ? x : r;
  r = x == 0.0f ? -INFINITY : r;
  r = x < 0.0f ? NAN : r;
  r = x != x ? x : r;
  return r;
}

// Overloads picked by the storage-generic templates: float = the vectorisable
// approximations, double = libm.
ELBITS_HD float ex_nonpos(float y) { return exp_nonpos(y); }  // y <= 0
ELBITS_HD double ex_nonpos(double y) { return exp(y); }
ELBITS_HD float lg(float x) { return log_pos(x); }  // x > 0
ELBITS_HD double lg(double x) { return log(x); }
ELBITS_HD float lg1p_unit(float e) { return log1p_unit(e); }  // e in [0, 1]
ELBITS_HD double lg1p_unit(double e) { return log1p(e); }
// exp(y) for y <= 8 (float: exp_nonpos(y - 8) e^8; flushes to 0 below y = -79).
ELBITS_HD float ex_le8(float y) { return exp_nonpos(y - 8.0f) * 2980.9579870417283f; }
ELBITS_HD double ex_le8(double y) { return exp(y); }
ELBITS_HD float absv(float x) { return x < 0.0f ? -x : x; }
ELBITS_HD double absv(double x) { return x < 0.0 ? -x : x; }

// softplus(x) = log(1 + e^x) and sigmoid(x), sharing one e = exp(-|x|), which is
// returned for callers that build more on it.
template <class T>
ELBITS_HD T softplus_sigmoid(T x, T& sp, T& sig) {
  const T e = ex_nonpos(-absv(x));
  sp = (x > T(0) ? x : T(0)) + lg1p_unit(e);
  sig = (x >= T(0) ? T(1) : e) / (T(1) + e);
  return e;
}

// ---- log-sum-exp that keeps its digits. A sum s = sum_i exp(y_i - max) is kept as
// q (the terms below the max) and k (how many equal it, each exactly 1), and
// log s = log1p(q + k - 1): as a float sum, s = 1 + 1e-6 would keep 3 digits of its log.
// The max itself is never added to log s (m + log s rounds to 1e-3 near m = 1e4): the
// callers subtract the parts they keep.

// log s from (q, k); k >= 1 for finite inputs, and the result is >= 0.
template <class T>
ELBITS_HD T log_sum_exp_tail(T q, T k) {
  const T r = q + (k - T(1));  // s - 1 >= 0
  const T small = lg1p_unit(r <= T(1) ? r : T(1));
  return r <= T(1) ? small : lg(T(1) + r);
}

// Online step of such a log-sum-exp over values y = u + w given in two parts (a
// mixture logit near 1e4 and a log-likelihood near -10: their float sum would
// round off the digits the loss keeps). (mu, mw) are the parts of the largest value
// so far; start from mu = -inf, mw = q = k = 0. Branch-free; a NaN stays NaN.
template <class T>
ELBITS_HD void lse_push2(T u, T w, T& mu, T& mw, T& q, T& k) {
  const T d = (u - mu) + (w - mw);  // y - max, from the parts
  const T e = ex_nonpos(-absv(d));
  const bool up = d > T(0), tie = d == T(0);
  q = up ? (q + k) * e : tie ? q : q + e;
  k = up ? T(1) : tie ? k + T(1) : k;
  mu = up ? u : mu;
  mw = up ? w : mw;
}

// exp(y) for a y that is <= 0 up to rounding (an exponent relative to a log-sum-exp).
template <class T>
ELBITS_HD T ex_rel(T y) {
  return ex_nonpos(y > T(0) ? T(0) : y);
}  // NaN stays NaN

// tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|).
template <class T>
ELBITS_HD T tanh_v(T x) {
  const T e = ex_nonpos(T(-2) * absv(x));
  const T t = (T(1) - e) / (T(1) + e);
  return x < T(0) ? -t : t;
}

}  // namespace elbits
