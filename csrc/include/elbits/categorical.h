// Categorical likelihood over the 256 levels of a subpixel (class dimension 1,
// as torch.nn.functional.cross_entropy):
//   nll(x, t) = logsumexp_c x_c - x_t          (nats)
//   d nll / d x_c = softmax(x)_c - [c == t] = exp(x_c - lse) - [c == t]
// The CPU kernel (csrc/cpu/categorical.cpp) computes lse with a max pass and a
// sum-exp pass over a tile of pixels held in cache, and the backward recomputes
// the softmax from the logits: no probability tensor is ever stored.
//
// lse = m + log s (m the max logit, s = sum_c exp(x_c - m)) is never formed as a
// float: near |x| = 1e4 one ulp of it is 1e-3, which is the whole loss of a
// confident pixel and a 1e-3 relative error in every softmax probability. The
// forward takes nll = (m - x_t) + log s, whose first term is exact or rounded once
// relative to itself, and keeps (m, 1 / s) per pixel for the backward's
// softmax_c = exp(x_c - m) / s (x_c - m exact near the max; each row then sums to 1
// within a few float32 ulps, as its terms are the forward's own). log s is
// log1p(s - 1) with s - 1 summed from the terms below the max (elbits/logmath.h):
// s = 1 + 1e-6 would keep only 3 digits of its log as a float sum.
#pragma once
#include "logmath.h"
#include "macros.h"

namespace elbits {

constexpr int kLevels = 256;

// One class's share of s = sum_c exp(x_c - m): terms below the max go to q, terms at
// it count in k (exactly 1 each), so that s - 1 = q + (k - 1) keeps its low digits
// (log s = log_sum_exp_tail(q, k), elbits/logmath.h). x - m <= 0 exactly (m is the
// max of the same values). 0/1 factors, not selects of q and k: GCC leaves a loop of
// two selected updates scalar (15x slower forward).
template <class T>
ELBITS_HD void sum_exp_add(T x, T m, T& q, T& k) {
  const T below = x < m ? T(1) : T(0);  // 0 at the max, and for a NaN (whose exp, NaN, is kept)
  q += below * ex_nonpos(x - m);
  k += T(1) - below;
}

// One gradient element: softmax_c - onehot, times the upstream scale g, from the max m
// and 1 / s of the pixel's logits. x - m <= 0 exactly (a NaN stays NaN).
template <class T>
ELBITS_HD T categorical_grad(T x, T m, T inv_s, bool is_target, T g) {
  const T p = ex_nonpos(x - m) * inv_s;
  return (p - (is_target ? T(1) : T(0))) * g;
}

}  // namespace elbits
