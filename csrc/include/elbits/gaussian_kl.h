// KL( N(mu, exp(logvar)) || N(0, 1) ) of one latent dimension, in nats:
//   0.5 (mu^2 + exp(logvar) - 1 - logvar) = 0.5 (mu^2 + expm1(logvar) - logvar)
// expm1 keeps the term exact near logvar = 0, where exp(logvar) - 1 - logvar
// would cancel to nothing; and below |logvar| = 1e-2 expm1(lv) - lv is its series
// lv^2 (1/2 + lv/6 + lv^2/24 + lv^3/120 + lv^4/720) (truncation < 1e-13 relative),
// since even expm1(lv) - lv keeps only 2 eps / |lv| relative (2e-4 at lv = 1e-12).
// Finite for every finite logvar below ~88 (float32).
//   d KL / d mu = mu,   d KL / d logvar = 0.5 expm1(logvar)
#pragma once
#include <cmath>

#include "macros.h"

namespace elbits {

template <class T>
ELBITS_HD T gaussian_kl(T mu, T logvar, T& dlogvar) {
  const T em1 = expm1(logvar);
  dlogvar = T(0.5) * em1;
  const T lv = logvar;
  const T small = lv * lv * (T(0.5) + lv * (T(1.0 / 6) + lv * (T(1.0 / 24) + lv * (T(1.0 / 120) + lv * T(1.0 / 720)))));
  const T f = (lv < T(0) ? -lv : lv) < T(1e-2) ? small : em1 - lv;  // expm1(lv) - lv >= 0
  return T(0.5) * (mu * mu + f);
}

}  // namespace elbits
