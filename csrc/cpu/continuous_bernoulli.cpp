// Continuous Bernoulli per element, gradient stored (Bernoulli pattern).
#include <algorithm>
#include <vector>

#include "colour_common.h"
#include "elbits/continuous_bernoulli.h"
#include "elbits/dispatch.h"
#include "kernels.h"
#include "parallel.h"
#include "rows.h"

namespace elbits::cpu {
namespace {
using namespace colour;

constexpr int64_t kChunk = 8192;

template <class T>
double target_value(T v) { return static_cast<double>(to_float(v)); }
double target_value(uint8_t v) { return v / 255.0; }

template <class S, class TT>
void cb_chunk(const S* x, const TT* t, S* g, double gs, int64_t n, double* sum, uint32_t* flags) {
  using T = compute_t<S>;
  double acc = 0.0;
  uint32_t bad = 0, range = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T eta = to_float(x[i]);
    const double tv = target_value(t[i]);
    bad |= not_finite(eta);
    range |= !(tv >= 0.0 && tv <= 1.0);
    T nll, grad;
    continuous_bernoulli_nll(eta, static_cast<T>(tv), nll, grad);
    acc += nll;
    if (g) st(g + i, static_cast<T>(grad * gs));
  }
  *sum = acc;
  flags[0] = bad;
  flags[1] = range;
}

}  // namespace

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
        cb_chunk(x, t, g, a.grad_scale, len, sum, f);
      });
    });
  });
  out.nonfinite_logits = any_flag(flags, 2, 0);
  out.target_out_of_range = any_flag(flags, 2, 1);
  return out;
}

}  // namespace elbits::cpu
