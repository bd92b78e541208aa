// KL( N(mu, exp(logvar)) || N(0, 1) ) of one latent dimension, in nats:
//   0.5 (mu^2 + exp(logvar) - 1 - logvar) = 0.5 (mu^2 + expm1(logvar) - logvar)
// expm1 keeps the term exact near logvar = 0, where exp(logvar) - 1 - logvar
// would cancel to nothing. Finite for every finite logvar below ~88 (float32).
//   d KL / d mu = mu,   d KL / d logvar = 0.5 expm1(logvar)
#pragma once
#include <cmath>

#include "macros.h"

namespace elbits {

template <class T>
ELBITS_HD T gaussian_kl(T mu, T logvar, T& dlogvar) {
  const T em1 = expm1(logvar);
  dlogvar = T(0.5) * em1;
  return T(0.5) * (mu * mu + (em1 - logvar));
}

}  // namespace elbits
