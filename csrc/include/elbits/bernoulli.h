// Bernoulli negative log-likelihood of a target t in [0, 1] under a logit x,
// in nats, and its derivative with respect to x:
//   nll(x, t) = softplus(x) - t x = max(x, 0) - t x + log1p(exp(-|x|))
//   d nll / dx = sigmoid(x) - t
// One exp and one log1p per element, shared by the value and the gradient.
// Not softplus_sigmoid (logmath.h) plus "- t x": adding relu(x) - t x first keeps a
// confident correct logit's small loss (x = 20, t = 1: 2e-9 nats) that
// (x + log1p(e)) - t x would round away.
#pragma once
#include <cmath>

#include "fastmath.h"
#include "macros.h"

namespace elbits {

ELBITS_HD void bernoulli_nll(float x, float t, float& nll, float& grad) {
  const float ax = x < 0.0f ? -x : x;
  const float e = exp_nonpos(-ax);  // in (0, 1]
  const float relu = x > 0.0f ? x : 0.0f;
  nll = (relu - t * x) + log1p_unit(e);
  const float num = x >= 0.0f ? 1.0f : e;
  grad = num / (1.0f + e) - t;
}

// float64 path: used by gradcheck and by float64 callers; libm accuracy.
ELBITS_HD void bernoulli_nll(double x, double t, double& nll, double& grad) {
  const double ax = x < 0.0 ? -x : x;
  const double e = exp(-ax);
  const double relu = x > 0.0 ? x : 0.0;
  nll = (relu - t * x) + log1p(e);
  const double num = x >= 0.0 ? 1.0 : e;
  grad = num / (1.0 + e) - t;
}

}  // namespace elbits
