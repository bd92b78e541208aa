// Continuous Bernoulli (Loaiza-Ganem & Cunningham 2019) of x in [0, 1] under a
// logit eta (lambda = sigmoid(eta)), in nats:
//   nll = softplus(eta) - x eta - log C(eta),
//   C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) = eta / tanh(eta / 2),
//   d nll / d eta = sigmoid(eta) - x - (1/eta - 1/sinh(eta)).
// softplus and log C share a factor: (1 + e^eta) tanh(eta / 2) = e^eta - 1, so
//   nll = log(expm1(eta) / eta) - x eta = eta ([eta > 0] - x) + log((1 - e) / |eta|)
// with e = exp(-|eta|): one exp and one log, and no log 2 or log1p(e) that would
// cancel (near eta = 0 the whole loss is eta (1/2 - x) + eta^2/24, which a
// difference of two log 2 would lose to float rounding: 1e-7 absolute). eta times
// ([eta > 0] - x) is rounded once relative to itself (elbits/bernoulli.h).
// Near lambda = 1/2 (eta = 0) both that log and d log C / d eta are 0/0 forms; there
// the kernel uses the series (coefficients from the Bernoulli numbers):
//   log(expm1(eta)/eta) = eta/2 + eta^2/24 - eta^4/2880 + eta^6/181440 - eta^8/9676800
//                         + eta^10/479001600 - 691 eta^12/15692092416000
// and its derivative, for |eta| < 2 in float (truncation < 2e-8 absolute, below the
// rounding of the other branch at the cut) and |eta| < 0.1 in float64 (< 1e-26).
// Elsewhere 1 - e >= 0.86 (float) or 0.095 (float64): no cancellation, and
// 1/sinh(|eta|) = 2e / (1 - e^2).
#pragma once
#include <cmath>

#include "logmath.h"
#include "macros.h"

namespace elbits {

template <class T>
ELBITS_HD void continuous_bernoulli_nll(T eta, T x, T& nll, T& grad) {
  const T a = absv(eta);
  const T e = ex_nonpos(-a);
  // Series in eta^2 of log(expm1(eta)/eta) - eta/2 and of its derivative minus 1/2.
  const T e2 = eta * eta;
  const T c1 = T(1.0 / 24), c2 = T(-1.0 / 2880), c3 = T(1.0 / 181440), c4 = T(-1.0 / 9676800), c5 = T(1.0 / 479001600),
          c6 = T(-691.0 / 15692092416000.0);
  const T ser = e2 * (c1 + e2 * (c2 + e2 * (c3 + e2 * (c4 + e2 * (c5 + e2 * c6)))));
  const T dser =
      eta * (T(2) * c1 + e2 * (T(4) * c2 + e2 * (T(6) * c3 + e2 * (T(8) * c4 + e2 * (T(10) * c5 + e2 * T(12) * c6)))));
  // Elsewhere: the log form and sigmoid - (1/eta - 1/sinh eta).
  const T om = T(1) - e;
  const T step = eta > T(0) ? T(1) : T(0);
  const T sig = (eta >= T(0) ? T(1) : e) / (T(1) + e);
  const T d = T(1) / a - T(2) * e / (om * (T(1) + e));
  const T dlogc = eta < T(0) ? -d : d;
  const bool series = a < (sizeof(T) == 4 ? T(2) : T(0.1));
  // One log of a selected argument (a select, not a branch: the loop stays vectorised).
  const T lg_arg = series ? T(1) : om / a;
  const T l = lg(lg_arg);
  nll = series ? eta * (T(0.5) - x) + ser : eta * (step - x) + l;
  grad = series ? (T(0.5) - x) + dser : (sig - x) - dlogc;
}

}  // namespace elbits
