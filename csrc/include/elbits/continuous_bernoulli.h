// Continuous Bernoulli (Loaiza-Ganem & Cunningham 2019) of x in [0, 1] under a
// logit eta (lambda = sigmoid(eta)), in nats:
//   nll = softplus(eta) - x eta - log C(eta),
//   C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) = eta / tanh(eta / 2),
//   d nll / d eta = sigmoid(eta) - x - (1/eta - 1/sinh(eta)).
// Both come from softplus's e = exp(-|eta|): C = |eta| (1 + e) / (1 - e) and
// 1/sinh(|eta|) = 2e / (1 - e^2), so one log is all that is added to softplus
// (no tanh, sinh or second log).
// Near lambda = 1/2 (eta = 0) both log C and its derivative are 0/0 forms and
// lose digits to cancellation; there they are Taylor series (coefficients from
// the Bernoulli numbers of 1/sinh):
//   log C = log 2 + eta^2/12 - 7 eta^4/1440 + 31 eta^6/90720 - 127 eta^8/4838400
//   d log C / d eta = eta/6 - 7 eta^3/360 + 31 eta^5/15120 - 127 eta^7/604800
// for |eta| < 0.5 in float (truncation < 1e-7 relative) and |eta| < 0.01 in
// float64 (< 1e-16).
#pragma once
#include <cmath>

#include "logmath.h"
#include "macros.h"

namespace elbits {

template <class T>
ELBITS_HD void continuous_bernoulli_nll(T eta, T x, T& nll, T& grad) {
  T sp, sig;
  const T e = softplus_sigmoid(eta, sp, sig);
  const T cut = sizeof(T) == 4 ? T(0.5) : T(0.01);
  T logc, dlogc;
  if (absv(eta) < cut) {
    const T e2 = eta * eta;
    logc = T(0.69314718055994530942) +
           e2 * (T(1.0 / 12) + e2 * (T(-7.0 / 1440) + e2 * (T(31.0 / 90720) + e2 * T(-127.0 / 4838400))));
    dlogc = eta * (T(1.0 / 6) + e2 * (T(-7.0 / 360) + e2 * (T(31.0 / 15120) + e2 * T(-127.0 / 604800))));
  } else {
    // |eta| >= cut: 1 - e >= 0.39 (float) or 0.00995 (float64), no cancellation.
    const T a = absv(eta);
    logc = lg(a * (T(1) + e) / (T(1) - e));
    const T d = T(1) / a - T(2) * e / ((T(1) - e) * (T(1) + e));
    dlogc = eta < T(0) ? -d : d;
  }
  nll = sp - x * eta - logc;
  grad = sig - x - dlogc;
}

}  // namespace elbits
