// Gaussian KL per latent dimension. [batch, z] is small next to the image
// tensors, so it runs on the calling thread in float64 whatever the storage.
#include "elbits/gaussian_kl.h"
#include "elbits/dispatch.h"
#include "kernels.h"

namespace elbits::cpu {
namespace {

template <class M, class L, class O>
void kl_loop(const View2D& mu, const View2D& logvar, int64_t batch, int64_t z, O* kl, O* dlogvar, KLFlags& flags) {
  const M* mp = static_cast<const M*>(mu.data);
  const L* lp = static_cast<const L*>(logvar.data);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < z; ++j) {
      const double m = to_float(mp[b * mu.stride0 + j * mu.stride1]);
      const double lv = to_float(lp[b * logvar.stride0 + j * logvar.stride1]);
      flags.nonfinite_mu |= not_finite(m);
      flags.nonfinite_logvar |= not_finite(lv);
      double dlv;
      const int64_t i = b * z + j;
      kl[i] = static_cast<O>(gaussian_kl(m, lv, dlv));
      if (dlogvar) dlogvar[i] = static_cast<O>(dlv);
    }
  }
}

}  // namespace

KLFlags gaussian_kl_rows(const View2D& mu, const View2D& logvar, int64_t batch, int64_t z, void* kl, void* dlogvar,
                         bool out_f64) {
  KLFlags flags;
  dispatch_float(mu.dtype, [&](auto m_tag) {
    dispatch_float(logvar.dtype, [&](auto l_tag) {
      using M = decltype(m_tag);
      using L = decltype(l_tag);
      if (out_f64) kl_loop<M, L>(mu, logvar, batch, z, static_cast<double*>(kl), static_cast<double*>(dlogvar), flags);
      else kl_loop<M, L>(mu, logvar, batch, z, static_cast<float*>(kl), static_cast<float*>(dlogvar), flags);
    });
  });
  return flags;
}

}  // namespace elbits::cpu
