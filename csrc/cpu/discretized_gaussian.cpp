// Discretized Gaussian per subpixel, float64 arithmetic (erfc), gradient stored.
#include <type_traits>

#include "elbits/discretized_gaussian.h"
#include "elbits/dtypes.h"
#include "elbits/logmath.h"
#include "kernels.h"
#include "row_reduce.h"

namespace elbits::cpu {
namespace {

constexpr int64_t kChunk = 1024;  // pixels per task

template <class S, class L>
void dg_chunk(const S* prm, int64_t P, const L* tgt, int64_t n, int64_t C, S* grad, double gs, double* sum,
              uint32_t* flags) {
  double acc = 0.0;
  uint32_t bad = 0, range = 0;
  for (int64_t c = 0; c < C; ++c) {
    const S* mr = prm + c * P;
    const S* lr = prm + (C + c) * P;
    const L* t = tgt + c * P;
    for (int64_t p = 0; p < n; ++p) {
      const double m = to_float(mr[p]), ls = to_float(lr[p]);
      bad |= not_finite(m) | not_finite(ls);
      const int64_t lv = level_of(t[p], range);
      double lp, dm, dls;
      discretized_gaussian(static_cast<int>(lv), m, ls, lp, dm, dls);
      acc -= lp;
      if (grad) {
        st(grad + c * P + p, static_cast<compute_t<S>>(-dm * gs));
        st(grad + (C + c) * P + p, static_cast<compute_t<S>>(-dls * gs));
      }
    }
  }
  *sum = acc;
  flags[0] = bad;
  flags[1] = range;
}

}  // namespace

PixelFlags discretized_gaussian_rows(const PixelArgs& a) {
  return reduce_pixel_rows(a.params, a.params_dtype, a.params_batch_stride, a.target, a.target_dtype,
                           a.target_batch_stride, a.batch, a.pixels, kChunk, a.n_threads, a.recon, a.out_f64,
                           [&](auto prm, auto t, int64_t b, int64_t p0, int64_t n, double* sum, uint32_t* f) {
    using S = std::remove_cv_t<std::remove_pointer_t<decltype(prm)>>;
    S* g = a.grad ? static_cast<S*>(a.grad) + b * 2 * a.channels * a.pixels + p0 : nullptr;
    dg_chunk(prm, a.pixels, t, n, a.channels, g, a.grad_scale, sum, f);
  });
}

}  // namespace elbits::cpu
