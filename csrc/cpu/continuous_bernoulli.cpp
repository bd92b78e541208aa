// Continuous Bernoulli per element, gradient stored (Bernoulli pattern).
#include <algorithm>
#include <vector>

#include "elbits/continuous_bernoulli.h"
#include "elbits/dispatch.h"
#include "elbits/dtypes.h"
#include "isa_clones.h"
#include "kernels.h"
#include "parallel.h"
#include "row_reduce.h"

namespace elbits::cpu {
namespace {

constexpr int64_t kChunk = 8192;
// Sums in the compute type over blocks this short stay near its epsilon per lane
// (as the Bernoulli loop's); the blocks are added in float64.
constexpr int64_t kBlock = 512;

template <class T, class TT>
ELBITS_INLINE T target_value(TT v) {
  return static_cast<T>(to_float(v));
}
template <class T>
ELBITS_INLINE T target_value(uint8_t v) {
  return static_cast<T>(v) / T(255);
}

template <class S, class TT, bool kGrad>
ELBITS_INLINE void cb_loop(const S* x, const TT* t, S* g, compute_t<S> gs, int64_t n, double* sum, uint32_t* flags) {
  using T = compute_t<S>;
  double acc = 0.0;
  uint32_t bad = 0, range = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = start + kBlock < n ? start + kBlock : n;
    T block = T(0);
#pragma omp simd reduction(+ : block) reduction(| : bad, range)
    for (int64_t i = start; i < end; ++i) {
      const T eta = to_float(x[i]);
      const T tv = target_value<T>(t[i]);
      bad |= not_finite(eta);
      range |= !(tv >= T(0) && tv <= T(1));
      T nll, grad;
      continuous_bernoulli_nll(eta, tv, nll, grad);
      block += nll;
      if constexpr (kGrad) st(g + i, grad * gs);
    }
    acc += block;
  }
  *sum = acc;
  flags[0] = bad;
  flags[1] = range;
}

}  // namespace

// Per-ISA clones of the loop (see isa_clones.h).
namespace isa_clones {
#define ELBITS_CB_CLONES(S, TT)                                                                       \
  ELBITS_CLONES void cb_chunk(const S* x, const TT* t, S* g, compute_t<S> gs, int64_t n, double* sum, \
                              uint32_t* flags) {                                                      \
    if (g) cb_loop<S, TT, true>(x, t, g, gs, n, sum, flags);                                          \
    else cb_loop<S, TT, false>(x, t, g, gs, n, sum, flags);                                           \
  }
#define ELBITS_CB_TARGETS(S)   \
  ELBITS_CB_CLONES(S, uint8_t) \
  ELBITS_CB_CLONES(S, float) ELBITS_CB_CLONES(S, double) ELBITS_CB_CLONES(S, half_t) ELBITS_CB_CLONES(S, bf16_t)
ELBITS_CB_TARGETS(float)
ELBITS_CB_TARGETS(double)
ELBITS_CB_TARGETS(half_t)
ELBITS_CB_TARGETS(bf16_t)
#undef ELBITS_CB_TARGETS
#undef ELBITS_CB_CLONES
}  // namespace isa_clones

BernoulliFlags continuous_bernoulli_rows(const BernoulliArgs& a) {
  BernoulliFlags out;
  if (a.batch == 0) return out;
  std::vector<uint32_t> flags;
  dispatch_float(a.logits_dtype, [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_target(a.target_dtype, [&](auto t_tag) {
      using TT = decltype(t_tag);
      flags = reduce_rows<2>(a.batch, a.n, kChunk, a.n_threads, a.recon, a.out_f64,
                             [&](int64_t row, int64_t begin, int64_t len, double* sum, uint32_t* f) {
        const S* x = static_cast<const S*>(a.logits) + row * a.logits_row_stride + begin;
        const TT* t = static_cast<const TT*>(a.target) + row * a.target_row_stride + begin;
        S* g = a.grad ? static_cast<S*>(a.grad) + row * a.n + begin : nullptr;
        isa_clones::cb_chunk(x, t, g, static_cast<compute_t<S>>(a.grad_scale), len, sum, f);
      });
    });
  });
  out.nonfinite_logits = any_flag(flags, 2, 0);
  out.target_out_of_range = any_flag(flags, 2, 1);
  return out;
}

}  // namespace elbits::cpu
