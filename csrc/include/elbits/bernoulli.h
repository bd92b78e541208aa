// Bernoulli negative log-likelihood of a target t in [0, 1] under a logit x,
// in nats, and its derivative with respect to x:
//   nll(x, t) = softplus(x) - t x = max(x, 0) - t x + log1p(exp(-|x|))
//   d nll / dx = sigmoid(x) - t
// One exp and one log1p per element, shared by the value and the gradient.
// Not softplus_sigmoid (logmath.h) plus "- t x": taking relu(x) - t x first keeps a
// confident correct logit's small loss (x = 20, t = 1: 2e-9 nats) that
// (x + log1p(e)) - t x would round away. And relu(x) - t x rounded once: a separate
// product t x is rounded to the ulp of x first (5e-4 at x = 1e4, t = 1 - 6e-8: the
// whole loss, whose true value is 6e-4). With FMA that is fma(-t, x, relu); without,
// x ([x > 0] - t), as 1 - t is exact for t >= 1/2 (one more operation: 4% slower).
#pragma once
#include <cmath>

#include "fastmath.h"
#include "macros.h"

namespace elbits {

ELBITS_HD void bernoulli_nll(float x, float t, float& nll, float& grad) {
  const float ax = x < 0.0f ? -x : x;
  const float e = exp_nonpos(-ax);  // in (0, 1]
#if defined(__FMA__) || defined(__CUDA_ARCH__)
  const float relu = x > 0.0f ? x : 0.0f;
  nll = fmaf(-t, x, relu) + log1p_unit(e);
#else
  const float step = x > 0.0f ? 1.0f : 0.0f;
  nll = x * (step - t) + log1p_unit(e);
#endif
  const float num = x >= 0.0f ? 1.0f : e;
  grad = num / (1.0f + e) - t;
}

// float64 path: used by gradcheck and by float64 callers; libm accuracy.
ELBITS_HD void bernoulli_nll(double x, double t, double& nll, double& grad) {
  const double ax = x < 0.0 ? -x : x;
  const double e = exp(-ax);
  const double step = x > 0.0 ? 1.0 : 0.0;
  nll = x * (step - t) + log1p(e);
  const double num = x >= 0.0 ? 1.0 : e;
  grad = num / (1.0 + e) - t;
}

}  // namespace elbits
