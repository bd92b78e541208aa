// Discretized Gaussian of one subpixel. Data x = level / 127.5 - 1 in [-1, 1],
// bin [x - h, x + h], h = 1/255, with level 0 open to -inf and 255 to +inf.
// With sigma = exp(log_scale), a = (x + h - m) / sigma, b = (x - h - m) / sigma:
//   log P = log(Phi(a) - Phi(b)),  level 0: log Phi(a),  level 255: log Phi(-b).
// Computed in float64 whatever the storage (parameters are per subpixel, the
// arithmetic is small next to memory traffic). An interior bin is one of two cases:
// - Narrow in z (half-width delta = h / sigma <= 1/4 and |c| delta <= 1/4, with the
//   bin centre c = (x - m) / sigma): Phi(a) - Phi(b) is a difference of two nearly
//   equal numbers (for sigma = e^33 they agree to 17 digits and the difference of
//   their logs rounds to 0), so it is integrated instead: with the generating
//   function of the Hermite polynomials He_n,
//     Phi(c + delta) - Phi(c - delta) = 2 delta phi(c) S,
//     S = sum_k He_2k(c) delta^2k / (2k + 1)!,
//   taken to k = 5 (the first term left out is below 1e-13 relative), and
//   log P = log phi(c) + log(2 delta) + log1p(S - 1) with log(2 delta) = log(2h) -
//   log_scale from the parameter, so it stays finite however wide the Gaussian.
// - Otherwise the bin is reflected into the lower tail (Phi(a) - Phi(b) =
//   Phi(-b) - Phi(-a)) and written log Phi(hi) + log(-expm1(log Phi(lo) - log Phi(hi))):
//   there the two logs differ by more than ~0.4 and by about |c| delta relative to
//   their size c^2 / 2, so their difference keeps all but a few digits.
// log Phi comes from erfc, and its asymptotic series below z = -30 where erfc
// underflows: finite and accurate for every finite a, b.
// Derivatives: d logP / d a = phi(a) / P, d logP / d b = -phi(b) / P. For the
// tail formula they are the Mills ratios phi(z) / Phi(z) of the two edges over
// 1 - Phi(lo)/Phi(hi) (no phi or P is formed, so nothing under- or overflows), each
// ratio from its own asymptotic series below z = -30: exp(log phi - log Phi) there
// would subtract two numbers near -z^2/2 (-5e33 for a mean 1e4 away at sigma =
// e^-30) and keep nothing. Narrow bins take them from S and its derivatives, where
// phi(a) - phi(b) would cancel.
#pragma once
#include <cmath>

#include "macros.h"

namespace elbits {

ELBITS_HD double log_ndtr(double z) {
  const double kSqrtHalf = 0.70710678118654752440;
  if (z > 5.0) return log1p(-0.5 * erfc(z * kSqrtHalf));
  if (z > -30.0) return log(0.5 * erfc(-z * kSqrtHalf));
  // log Phi(z) = -z^2/2 - log(-z) - log(2 pi)/2 + log(1 - 1/z^2 + 3/z^4 - 15/z^6 + 105/z^8)
  const double w = 1.0 / (z * z);
  return -0.5 * z * z - log(-z) - 0.91893853320467274178 + log1p(w * (-1.0 + w * (3.0 + w * (-15.0 + w * 105.0))));
}

ELBITS_HD double log_npdf(double z) { return -0.5 * z * z - 0.91893853320467274178; }

// phi(z) / Phi(z), with the asymptotic series of log_ndtr below -30:
// Phi(z) = phi(z) / (-z) (1 - 1/z^2 + 3/z^4 - 15/z^6 + 105/z^8).
ELBITS_HD double mills(double z) {
  if (z > -30.0) return exp(log_npdf(z) - log_ndtr(z));
  const double w = 1.0 / (z * z);
  return -z / (1.0 + w * (-1.0 + w * (3.0 + w * (-15.0 + w * 105.0))));
}

// log P of a narrow interior bin (see above) and its derivatives w.r.t. the centre
// c and the log-scale (through delta and log(2 delta), c held fixed):
//   d logP / d c = -c + S_c / S,  d logP / d log_scale|_c = -1 - delta S_delta / S.
ELBITS_HD void narrow_bin(double c, double delta, double log_2delta, double& logp, double& dc, double& dls_c) {
  // He_0..He_10 by the recurrence He_{n+1} = c He_n - n He_{n-1}.
  double he[11];
  he[0] = 1.0;
  he[1] = c;
  for (int n = 1; n < 10; ++n) he[n + 1] = c * he[n] - n * he[n - 1];
  const double y = delta * delta;
  // 1 / (2k + 1)! for k = 1..5.
  const double inv_fact[5] = {1.0 / 6.0, 1.0 / 120.0, 1.0 / 5040.0, 1.0 / 362880.0, 1.0 / 39916800.0};
  double s1 = 0.0, sc = 0.0, sd = 0.0, yk = 1.0;  // S - 1, S_c, delta S_delta
  for (int k = 1; k <= 5; ++k) {
    yk *= y;
    const double t = yk * inv_fact[k - 1];
    s1 += he[2 * k] * t;
    sc += 2 * k * he[2 * k - 1] * t;  // He_n' = n He_{n-1}
    sd += 2 * k * he[2 * k] * t;
  }
  const double s = 1.0 + s1;
  logp = log_npdf(c) + log_2delta + log1p(s1);
  dc = -c + sc / s;
  dls_c = -1.0 - sd / s;
}

// log P(bin) and derivatives w.r.t. mean and log-scale. level in 0..255.
// The bin's centre and edges are (2 level - 255 +- 1) / 255, one rounding each: as
// x +- h they would be two roundings off, which a narrow Gaussian whose mean sits on
// an edge (P = 1/2 exactly) turns into a 2e-4 relative error (sigma = e^-30).
ELBITS_HD void discretized_gaussian(int level, double m, double log_scale, double& logp, double& dm, double& dls) {
  const double h = 1.0 / 255.0;
  const double x = (2 * level - 255) / 255.0;
  const double inv = exp(-log_scale);
  const double c = (x - m) * inv;
  const double delta = h * inv;
  if (level > 0 && level < 255 && delta <= 0.25 && (c < 0.0 ? -c : c) * delta <= 0.25) {
    double dc, dls_c;
    // -4.848... = log(2h); d c / d m = -1 / sigma, d c / d log_scale = -c.
    narrow_bin(c, delta, -4.848116364598481 - log_scale, logp, dc, dls_c);
    dm = -dc * inv;
    dls = dls_c - c * dc;
    return;
  }
  const double a = ((2 * level - 254) / 255.0 - m) * inv;
  const double b = ((2 * level - 256) / 255.0 - m) * inv;
  double ga = 0.0, gb = 0.0;  // d logP / d a, d logP / d b
  if (level == 0) {
    logp = log_ndtr(a);
    ga = mills(a);
  } else if (level == 255) {
    logp = log_ndtr(-b);
    gb = -mills(-b);  // phi(b) / Phi(-b)
  } else {
    // Reflect so that the bin lies mostly in the lower tail.
    const bool flip = a + b > 0.0;
    const double hi = flip ? -b : a, lo = flip ? -a : b;
    const double lhi = log_ndtr(hi);
    const double l = log_ndtr(lo) - lhi;  // log(Phi(lo) / Phi(hi)) < 0
    logp = lhi + log(-expm1(l));
    // phi(hi) / P = mills(hi) / (1 - Phi(lo)/Phi(hi)), phi(lo) / P = mills(lo) / (Phi(hi)/Phi(lo) - 1).
    const double g_hi = mills(hi) / -expm1(l);
    const double g_lo = mills(lo) / expm1(-l);
    ga = flip ? g_lo : g_hi;    // phi(a) / P (phi is even)
    gb = flip ? -g_hi : -g_lo;  // -phi(b) / P
  }
  dm = -(ga + gb) * inv;
  dls = -(a * ga + b * gb);
}

}  // namespace elbits
