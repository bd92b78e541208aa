// Discretized Gaussian of one subpixel. Data x = level / 127.5 - 1 in [-1, 1],
// bin [x - h, x + h], h = 1/255, with level 0 open to -inf and 255 to +inf.
// With sigma = exp(log_scale), a = (x + h - m) / sigma, b = (x - h - m) / sigma:
//   log P = log(Phi(a) - Phi(b)),  level 0: log Phi(a),  level 255: log Phi(-b).
// Computed in float64 whatever the storage (parameters are per subpixel, the
// arithmetic is small next to memory traffic): the interior bin is reflected
// into the lower tail (Phi(a) - Phi(b) = Phi(-b) - Phi(-a)) and written as
//   log Phi(a) + log(-expm1(log Phi(b) - log Phi(a))),
// with log Phi from erfc, and its asymptotic series below z = -30 where erfc
// underflows: finite and accurate for every finite a, b.
// Derivatives: d logP / d a = phi(a) / P, d logP / d b = -phi(b) / P, taken as
// exp(log phi - log P) so neither factor under- or overflows.
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
  return -0.5 * z * z - log(-z) - 0.91893853320467274178 +
         log1p(w * (-1.0 + w * (3.0 + w * (-15.0 + w * 105.0))));
}

ELBITS_HD double log_npdf(double z) { return -0.5 * z * z - 0.91893853320467274178; }

// log P(bin) and derivatives w.r.t. mean and log-scale. level in 0..255.
ELBITS_HD void discretized_gaussian(double x, int level, double m, double log_scale, double& logp,
                                    double& dm, double& dls) {
  const double h = 1.0 / 255.0;
  const double inv = exp(-log_scale);
  const double a = (x + h - m) * inv;
  const double b = (x - h - m) * inv;
  double ga = 0.0, gb = 0.0;  // d logP / d a, d logP / d b
  if (level == 0) {
    logp = log_ndtr(a);
    ga = exp(log_npdf(a) - logp);
  } else if (level == 255) {
    logp = log_ndtr(-b);
    gb = -exp(log_npdf(b) - logp);
  } else {
    // Reflect so that the bin lies mostly in the lower tail.
    const bool flip = a + b > 0.0;
    const double hi = flip ? -b : a, lo = flip ? -a : b;
    const double lhi = log_ndtr(hi);
    logp = lhi + log(-expm1(log_ndtr(lo) - lhi));
    ga = exp(log_npdf(a) - logp);
    gb = -exp(log_npdf(b) - logp);
  }
  dm = -(ga + gb) * inv;
  dls = -(a * ga + b * gb);
}

}  // namespace elbits
