// Categorical likelihood over the 256 levels of a subpixel (class dimension 1,
// as torch.nn.functional.cross_entropy):
//   nll(x, t) = logsumexp_c x_c - x_t          (nats)
//   d nll / d x_c = softmax(x)_c - [c == t] = exp(x_c - lse) - [c == t]
// The CPU kernel (csrc/cpu/categorical.cpp) computes lse with a max pass and a
// sum-exp pass over a tile of pixels held in cache, and the backward recomputes
// the softmax from (x, lse): no probability tensor is ever stored.
#pragma once
#include "logmath.h"
#include "macros.h"

namespace elbits {

constexpr int kLevels = 256;

// lse from the running max m and sum s = sum_c exp(x_c - m) (s >= 1).
template <class T>
ELBITS_HD T lse_from(T m, T s) { return m + lg(s); }

// One gradient element: softmax_c - onehot, times the upstream scale g.
template <class T>
ELBITS_HD T categorical_grad(T x, T lse, bool is_target, T g) {
  const T p = ex_nonpos(x - lse < T(0) ? x - lse : T(0));  // x <= lse up to rounding
  return (p - (is_target ? T(1) : T(0))) * g;
}

}  // namespace elbits
